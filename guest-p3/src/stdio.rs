//! The command's output: whole lines on stdout and stderr, each written and waited
//! for before the command goes on.

use wasip3::cli::{stderr, stdout};
use wasip3::wit_stream;

/// Prints the contract line `listening on ADDR`, before the first accept.
pub(crate) async fn announce(addr: std::net::SocketAddr) {
    out(format!("listening on {addr}\n").as_bytes()).await;
}

/// Prints `bytes` on stdout and waits until they are out.
pub(crate) async fn out(bytes: &[u8]) {
    let (mut writer, reader) = wit_stream::new::<u8>();
    let done = stdout::write_via_stream(reader);
    writer.write_all(bytes.to_vec()).await;
    drop(writer);
    // Nowhere to report a failure to print.
    let _ = done.await;
}

/// Prints one line on stderr.
pub(crate) async fn err_line(line: &str) {
    let (mut writer, reader) = wit_stream::new::<u8>();
    let done = stderr::write_via_stream(reader);
    writer.write_all(format!("{line}\n").into_bytes()).await;
    drop(writer);
    let _ = done.await;
}
