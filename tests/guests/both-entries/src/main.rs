//! A command built as the WASI test suite builds its 0.3 programs: Rust's `std` on
//! `wasm32-wasip2` gives it `wasi:cli/run@0.2` (this `main`), and an async export
//! gives it `wasi:cli/run@0.3.0` (the real program). Each prints which one ran; `main`
//! also fails (exit 1), so a host that runs the wrong one cannot pass for right.

// `allow`, not `expect`: whether the lint fires inside generated glue depends on the
// target (a test build expands none).
#![allow(
    unsafe_code,
    reason = "wasip3's export! expands to the component ABI's glue; no hand-written unsafe"
)]

struct Component;

impl wasip3::exports::cli::run::Guest for Component {
    async fn run() -> Result<(), ()> {
        println!("ran wasi:cli/run@0.3.0");
        Ok(())
    }
}

wasip3::cli::command::export!(Component);

fn main() {
    println!("ran wasi:cli/run@0.2");
    std::process::exit(1);
}
