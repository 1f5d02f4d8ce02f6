//! What a `Sandbox` gives an instance: its program name and arguments, its
//! environment, and its stdio (captured or discarded) — and nothing of another's.

use anyhow::Result;
use sockbox_host::output::Stdio;

use crate::common::{HARNESS, LIMITS_GUEST};

/// The instance sees `[program, sandbox args…, call args…]` and exactly the
/// environment the builder set, in order.
#[test]
fn instances_see_their_args_and_env() -> Result<()> {
    let sandbox = HARNESS
        .sandbox()
        .program("probe")
        .args(["show", "--from-sandbox"])
        .env("GREETING", "hello world")
        .env("EMPTY", "")
        .stdout(Stdio::capture())
        .build();
    let output = HARNESS.block_on(sandbox.run_command(&LIMITS_GUEST, ["--from-call"]))?;
    output.assert_success();
    assert_eq!(
        output.stdout,
        "arg: probe\narg: show\narg: --from-sandbox\narg: --from-call\n\
         env: GREETING=hello world\nenv: EMPTY=\n"
    );
    Ok(())
}

/// With stdio discarded (the default), nothing is captured.
#[test]
fn discarded_stdio_is_empty() -> Result<()> {
    let sandbox = HARNESS.sandbox().env("SECRET", "x").build();
    let output = HARNESS.block_on(sandbox.run_command(&LIMITS_GUEST, ["show"]))?;
    output.assert_success();
    assert_eq!((output.stdout.as_str(), output.stderr.as_str()), ("", ""));
    Ok(())
}
