//! The `sockbox` binary cargo builds: it starts, and names itself. (Its being an
//! integration test of this crate is also what makes `cargo test` build the binary
//! that the end-to-end suite in `tests/` runs.)

use std::process::Command;

/// `sockbox --version` prints the crate's version and exits 0.
#[test]
fn the_binary_names_its_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_sockbox"))
        .arg("--version")
        .output()
        .expect("run sockbox --version");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("sockbox {}\n", env!("CARGO_PKG_VERSION"))
    );
}
