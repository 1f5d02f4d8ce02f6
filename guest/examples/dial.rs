//! The smallest client on `sockbox_guest::net`: dial, send, half-close, print the reply.
//!
//! ```text
//! sockbox run --allow 127.0.0.1:8080 --wasm dial.wasm -- 127.0.0.1:8080
//! ```

use std::io::{Read, Write};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let mut conn = sockbox_guest::net::dial(&addr)?;
    conn.write_all(b"Hello, World!")?;
    conn.close_write()?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)?;
    println!("Received: {reply}");
    Ok(())
}
