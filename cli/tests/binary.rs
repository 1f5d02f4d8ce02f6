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

/// `-vv` logs every decision on stderr through `tracing`, inside the instance's span;
/// without it, stderr has only the denial line and the guest's error.
#[test]
fn verbose_logs_every_decision() {
    let run = |verbose: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sockbox"))
            .arg("run")
            .args(verbose)
            .args(["--no-cache", "--allow", "tcp://127.0.0.1:1", "--"])
            .args(["dial", "127.0.0.2:9"])
            .output()
            .expect("run sockbox")
    };
    let quiet = run(&[]);
    assert_eq!(quiet.status.code(), Some(1), "{quiet:?}");
    assert_eq!(
        String::from_utf8_lossy(&quiet.stderr),
        "sockbox: denied tcp connect to 127.0.0.2:9 (no rule allows it)\n\
         Error: dial tcp 127.0.0.2:9: access denied\n"
    );
    let verbose = run(&["-vv"]);
    assert_eq!(verbose.status.code(), Some(1), "{verbose:?}");
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(
        stderr.contains(
            "sockbox: debug: instance{name=\"sockbox-guest\"}: decided instance=sockbox-guest use=TcpConnect addr=127.0.0.2:9 allowed=false\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("sockbox: denied tcp connect to 127.0.0.2:9 (no rule allows it)\n"),
        "{stderr}"
    );
}
