//! Bad input from a user gets one clear line and the documented exit status, and no
//! guest code runs for sockbox's own errors.

use crate::common::{Process, TIMEOUT, sockbox, start};
use anyhow::Result;
use sockbox_host::Policy;

const GUEST_USAGE_HEAD: &str = "usage: sockbox-guest <command> [arguments]";

/// Runs `sockbox ARGS` and returns its exit code, stdout and stderr.
fn sockbox_with(args: &[&str]) -> Result<(i32, String, String)> {
    let mut command = sockbox();
    command.args(args);
    let done = Process::run(command)?;
    Ok((done.code()?, done.stdout, done.stderr))
}

/// An unknown guest command prints usage on stderr and exits 2.
#[test]
fn unknown_guest_command() -> Result<()> {
    let done = start(Policy::deny_all(), &["frobnicate"])?.wait(TIMEOUT)?;
    assert_eq!(done.status.code(), Some(2), "{done}");
    assert!(
        done.stderr
            .starts_with("Error: unknown command \"frobnicate\"\n"),
        "{done}"
    );
    assert!(done.stderr.contains(GUEST_USAGE_HEAD), "{done}");
    assert_eq!(done.stdout, "");
    Ok(())
}

/// Missing and extra arguments are bad usage, not network errors.
#[test]
fn wrong_guest_arguments() -> Result<()> {
    for args in [
        &["dial"][..],
        &["listen"],
        &["echo", "127.0.0.1:0", "--count"],
        &[],
    ] {
        let done = start(Policy::deny_all(), args)?.wait(TIMEOUT)?;
        assert_eq!(done.status.code(), Some(2), "{args:?}: {done}");
        assert!(done.stderr.contains(GUEST_USAGE_HEAD), "{args:?}: {done}");
    }
    let done = start(
        Policy::deny_all(),
        &["echo", "127.0.0.1:0", "--count", "many"],
    )?
    .wait(TIMEOUT)?;
    assert_eq!(done.status.code(), Some(2), "{done}");
    assert!(
        done.stderr
            .starts_with("Error: --count wants a whole number, not \"many\"\n")
    );
    Ok(())
}

/// Malformed addresses fail before any network use, in Go's words, with exit 2.
#[test]
fn malformed_addresses() -> Result<()> {
    let cases = [
        (
            "dial",
            "127.0.0.1",
            "dial tcp: address 127.0.0.1: missing port in address",
        ),
        (
            "dial",
            "::1:80",
            "dial tcp: address ::1:80: too many colons in address",
        ),
        (
            "listen",
            "[::1:80",
            "listen tcp: address [::1:80: missing ']' in address",
        ),
        (
            "dial",
            "127.0.0.1:99999",
            "dial tcp: address 127.0.0.1:99999: invalid port",
        ),
        (
            "echo",
            "127.0.0.1:http",
            "echo tcp: address 127.0.0.1:http: invalid port",
        ),
    ];
    for (command, addr, line) in cases {
        let done = start(Policy::inherit_network(), &[command, addr])?.wait(TIMEOUT)?;
        assert_eq!(done.status.code(), Some(2), "{command} {addr}: {done}");
        assert!(
            done.stderr.starts_with(&format!("Error: {line}\n")),
            "{command} {addr}: {done}"
        );
        assert_eq!(done.denials, [], "no network use was attempted");
    }
    Ok(())
}

/// Bad rules are sockbox's errors: one line naming the rule, the part and why; exit 2.
#[test]
fn bad_rules() -> Result<()> {
    let cases = [
        (
            "--allow",
            "tcp://10.0.0.0/33:80",
            "sockbox: invalid rule `tcp://10.0.0.0/33:80`: host prefix length `/33` is not between 0 and 32\n",
        ),
        (
            "--allow",
            "tcp://127.0.0.1:70000",
            "sockbox: invalid rule `tcp://127.0.0.1:70000`: ports port 70000 is out of range (1-65535)\n",
        ),
        (
            "--allow-listen",
            "tcp://",
            "sockbox: invalid rule `tcp://`: rule has nothing after the scheme: expected HOST:PORTS, for example 127.0.0.1:8080\n",
        ),
        (
            "--allow",
            "127.0.0.1:80",
            "sockbox: invalid rule `127.0.0.1:80`: rule expected SCHEME://HOST:PORTS, for example tcp://127.0.0.1:8080\n",
        ),
        (
            "--allow",
            "ftp://127.0.0.1:21",
            "sockbox: invalid rule `ftp://127.0.0.1:21`: scheme `ftp` is not a scheme: use tcp, udp or *\n",
        ),
        (
            "--allow",
            "tcp://127.0.0.1:90-80",
            "sockbox: invalid rule `tcp://127.0.0.1:90-80`: ports range `90-80` runs backwards\n",
        ),
        (
            "--deny",
            "tcp://{}:80",
            "sockbox: invalid rule `tcp://{}:80`: host list `{}` is empty: give at least one of the hosts\n",
        ),
        (
            "--allow-accept",
            "tcp://peer.example:*",
            "sockbox: invalid rule `tcp://peer.example:*`: rule names a host by DNS name, but accept rules match peers by address (a peer's name is not known): use an address, a CIDR or *\n",
        ),
    ];
    for (flag, rule, line) in cases {
        // The guest would print usage if it ran; it must not run at all.
        let (code, stdout, stderr) = sockbox_with(&["run", flag, rule, "--", "frobnicate"])?;
        assert_eq!(
            (code, stdout.as_str(), stderr.as_str()),
            (2, "", line),
            "{flag} {rule}"
        );
    }
    Ok(())
}

/// An unknown subcommand or flag of sockbox itself: one line, exit 2.
#[test]
fn bad_sockbox_usage() -> Result<()> {
    let (code, stdout, stderr) = sockbox_with(&["frob"])?;
    assert_eq!((code, stdout.as_str()), (2, ""));
    assert_eq!(
        stderr,
        "sockbox: unrecognized subcommand 'frob' (see `sockbox --help`)\n"
    );
    let (code, _, stderr) = sockbox_with(&["run", "--bogus"])?;
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "sockbox: unexpected argument '--bogus' found (see `sockbox --help`)\n"
    );
    Ok(())
}

/// A file that is not a component, or not there, is reported in one line with exit 2.
#[test]
fn not_a_component() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let text = dir.path().join("notes.wasm");
    std::fs::write(&text, "not wasm at all\n")?;
    // A core module is wasm, but not a component.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0")?;
    let missing = dir.path().join("missing.wasm");
    for (path, why) in [
        (&text, "failed to parse WebAssembly module"),
        (
            &core,
            "attempted to parse a wasm module with a component parser",
        ),
        (&missing, "No such file or directory"),
    ] {
        let path = path.to_str().expect("a UTF-8 temp path");
        let (code, stdout, stderr) = sockbox_with(&["run", "--wasm", path, "--", "dial", "x"])?;
        assert_eq!((code, stdout.as_str()), (2, ""), "{path}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.starts_with("sockbox: "), "{stderr}");
        assert!(
            stderr.contains(path) && stderr.contains(why),
            "{path}: {stderr}"
        );
    }
    Ok(())
}

/// Writes a component given in WAT text to a file in `dir` and returns its path.
fn component_file(dir: &tempfile::TempDir, name: &str, wat: &str) -> Result<String> {
    let path = dir.path().join(name);
    std::fs::write(&path, wat::parse_str(wat)?)?;
    Ok(path.to_str().expect("a UTF-8 temp path").to_owned())
}

/// A component that does not export `wasi:cli/run` is refused before it runs: one line, exit 2.
#[test]
fn component_without_run_export() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = component_file(&dir, "empty.wasm", "(component)")?;
    let (code, stdout, stderr) = sockbox_with(&["run", "--wasm", &path])?;
    assert_eq!((code, stdout.as_str()), (2, ""), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with(&format!("sockbox: prepare component {path}: ")),
        "{stderr}"
    );
    assert!(stderr.contains("wasi:cli/run"), "{stderr}");
    Ok(())
}

/// A guest that traps ends sockbox with status 134, as `wasmtime run` does, and one line saying so.
#[test]
fn trapping_guest_exits_134() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = component_file(
        &dir,
        "trap.wasm",
        r#"(component
            (core module $m (func (export "run") (result i32) unreachable))
            (core instance $i (instantiate $m))
            (func $run (result (result)) (canon lift (core func $i "run")))
            (instance $cli (export "run" (func $run)))
            (export "wasi:cli/run@0.2.12" (instance $cli)))"#,
    )?;
    let (code, stdout, stderr) = sockbox_with(&["run", "--wasm", &path])?;
    assert_eq!((code, stdout.as_str()), (134, ""), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("sockbox: guest trapped: "), "{stderr}");
    assert!(stderr.contains("unreachable"), "{stderr}");
    Ok(())
}

/// Flags the command does not take are named; a flag given twice, a value given to a
/// switch, and a flag missing its value are bad usage too.
#[test]
fn guest_flags_are_checked() -> Result<()> {
    let cases: [(&[&str], &str); 6] = [
        (
            &["dial", "127.0.0.1:1", "--tiemout", "1s"],
            "Error: unknown flag --tiemout for dial\n",
        ),
        (
            &["listen", "127.0.0.1:0", "--count=1"],
            "Error: unknown flag --count for listen\n",
        ),
        (
            &["echo", "127.0.0.1:0", "--count", "1", "--count=2"],
            "Error: --count is given twice\n",
        ),
        (
            &["echo", "127.0.0.1:0", "--copy=yes"],
            "Error: --copy takes no value\n",
        ),
        (
            &["echo", "127.0.0.1:0", "--forward", "--copy"],
            "Error: --copy and --forward exclude each other\n",
        ),
        (
            &["udp-send", "127.0.0.1:1", "hi", "--timeout"],
            "Error: --timeout needs a value\n",
        ),
    ];
    for (args, first_line) in cases {
        let done = start(Policy::deny_all(), args)?.wait(TIMEOUT)?;
        assert_eq!(done.status.code(), Some(2), "{args:?}: {done}");
        assert!(done.stderr.starts_with(first_line), "{args:?}: {done}");
        assert!(done.stderr.contains(GUEST_USAGE_HEAD), "{args:?}: {done}");
    }
    Ok(())
}
