//! `sockbox`: run a WebAssembly component with exactly the network a policy grants.

fn main() -> std::process::ExitCode {
    sockbox_cli::main()
}
