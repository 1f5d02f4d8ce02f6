//! The bindings of `wit/`'s `plugin` world, generated: the types and traits of its
//! exports, `wasi:cli/run` and `sockbox:net/flows`, and the `export!` macro the crate
//! root uses. The world's imports are the `wasi` crate's bindings, which the rest of
//! the guest uses; only the exports are generated here.

wit_bindgen::generate!({
    path: "../wit",
    world: "sockbox:net/plugin",
    with: {
        "wasi:cli/environment@0.2.12": wasi::cli::environment,
        "wasi:cli/exit@0.2.12": wasi::cli::exit,
        "wasi:cli/stdin@0.2.12": wasi::cli::stdin,
        "wasi:cli/stdout@0.2.12": wasi::cli::stdout,
        "wasi:cli/stderr@0.2.12": wasi::cli::stderr,
        "wasi:cli/terminal-input@0.2.12": wasi::cli::terminal_input,
        "wasi:cli/terminal-output@0.2.12": wasi::cli::terminal_output,
        "wasi:cli/terminal-stdin@0.2.12": wasi::cli::terminal_stdin,
        "wasi:cli/terminal-stdout@0.2.12": wasi::cli::terminal_stdout,
        "wasi:cli/terminal-stderr@0.2.12": wasi::cli::terminal_stderr,
        "wasi:cli/run@0.2.12": generate,
        "wasi:clocks/monotonic-clock@0.2.12": wasi::clocks::monotonic_clock,
        "wasi:io/error@0.2.12": wasi::io::error,
        "wasi:io/poll@0.2.12": wasi::io::poll,
        "wasi:io/streams@0.2.12": wasi::io::streams,
        "wasi:sockets/network@0.2.12": wasi::sockets::network,
        "wasi:sockets/instance-network@0.2.12": wasi::sockets::instance_network,
        "wasi:sockets/tcp@0.2.12": wasi::sockets::tcp,
        "wasi:sockets/tcp-create-socket@0.2.12": wasi::sockets::tcp_create_socket,
        "wasi:sockets/udp@0.2.12": wasi::sockets::udp,
        "wasi:sockets/udp-create-socket@0.2.12": wasi::sockets::udp_create_socket,
        "wasi:sockets/ip-name-lookup@0.2.12": wasi::sockets::ip_name_lookup,
    },
});
