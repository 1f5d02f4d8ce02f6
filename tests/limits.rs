//! Each limit trips on a guest built to exceed it, ends that instance with a typed
//! error naming the limit, and leaves the process and the next instance working; and
//! `sockbox run` gives each its documented exit status and one line.

use std::time::{Duration, Instant};

use anyhow::Result;
use sockbox_host::{Limit, SandboxBuilder, SandboxError, harness::Harness};
use sockbox_host::{NetError, Prepared};

use crate::common::{GUEST, HARNESS, LIMITS_GUEST, Process, TIMEOUT, serve_on, sockbox};

/// Runs `args` on `guest` in `sandbox` and returns the limit that stopped it.
fn tripped(sandbox: SandboxBuilder, guest: &Prepared, args: &[&str]) -> Result<Limit> {
    let running = HARNESS.spawn(sandbox, guest, args.iter().copied())?;
    let err = running
        .wait(TIMEOUT)
        .expect_err("the guest is stopped by a limit");
    let Some(SandboxError::Limit(limit)) = err.downcast_ref::<SandboxError>() else {
        panic!("expected a limit to stop the guest, got: {err:#}");
    };
    Ok(*limit)
}

/// After a limit stopped one instance, a fresh one in the same process runs fine.
fn next_instance_runs(harness: &Harness) -> Result<()> {
    let output = harness
        .spawn(harness.sandbox(), &LIMITS_GUEST, ["ok"])?
        .wait(TIMEOUT)?;
    output.assert_success();
    assert_eq!(output.stdout, "ok\n");
    Ok(())
}

/// A guest that keeps allocating is stopped at the memory cap, not by the host's OOM.
#[test]
fn memory_grower_trips_max_memory() -> Result<()> {
    let sandbox = HARNESS.sandbox().max_memory(16 << 20);
    let limit = tripped(sandbox, &LIMITS_GUEST, &["grow-memory"])?;
    assert_eq!(limit, Limit::Memory(16 << 20));
    next_instance_runs(&HARNESS)
}

/// A guest that loops without a host call is stopped once its CPU time is spent.
#[test]
fn infinite_loop_trips_cpu_time() -> Result<()> {
    let budget = Duration::from_millis(200);
    let started = Instant::now();
    let limit = tripped(HARNESS.sandbox().cpu_time(budget), &LIMITS_GUEST, &["spin"])?;
    assert_eq!(limit, Limit::CpuTime(budget));
    assert!(
        started.elapsed() >= budget,
        "stopped after {:?}",
        started.elapsed()
    );
    next_instance_runs(&HARNESS)
}

/// A guest whose time goes to long host calls — 16 MiB of random bytes a call, or one
/// `poll` over 30,000 idle clocks — is stopped by its CPU time like a wasm loop, not by
/// the timeout behind it (the time it spends in the host is its own).
#[test]
fn long_host_calls_trip_cpu_time() -> Result<()> {
    let budget = Duration::from_millis(500);
    for args in [["random-bytes", "16777216"], ["poll-clocks", "30000"]] {
        let sandbox = HARNESS
            .sandbox()
            .cpu_time(budget)
            .timeout(Duration::from_secs(20));
        let limit = tripped(sandbox, &LIMITS_GUEST, &args)?;
        assert_eq!(limit, Limit::CpuTime(budget), "{args:?}");
    }
    next_instance_runs(&HARNESS)
}

/// A CPU-time limit is the guest's own CPU time: with every core of the machine busy
/// elsewhere, a spinning guest still gets all of its budget before it is stopped
/// (measured on the thread that ran it), not a share of the wall-clock time.
#[test]
fn a_busy_host_does_not_stop_a_guest_early() -> Result<()> {
    let budget = Duration::from_millis(500);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let burners: Vec<_> = (0..cores * 2)
        .map(|_| {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    let sandbox = HARNESS.sandbox().cpu_time(budget).build();
    let measured = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let began = thread_cpu_time();
        let result = runtime.block_on(sandbox.run_command(&LIMITS_GUEST, ["spin"]));
        anyhow::Ok((result, thread_cpu_time() - began))
    })
    .join()
    .expect("the measuring thread does not panic");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for burner in burners {
        burner.join().expect("a burner does not panic");
    }
    let (result, used) = measured?;
    let err = result.expect_err("the CPU-time limit stops the guest");
    assert_eq!(err.limit(), Some(Limit::CpuTime(budget)), "{err}");
    assert!(used >= budget, "stopped after {used:?} of CPU time");
    Ok(())
}

/// The CPU time the calling thread has used so far.
fn thread_cpu_time() -> Duration {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    )
}

/// A guest that keeps opening listeners is capped, not stopped: its ninth socket
/// fails with "too many open files" (`new-socket-limit`), which the guest itself
/// reports before exiting on its own.
#[test]
fn socket_hoarder_is_capped_not_stopped() -> Result<()> {
    let sandbox = HARNESS
        .sandbox()
        .policy(serve_on("127.0.0.1"))
        .max_sockets(8);
    let running = HARNESS.spawn(sandbox, &LIMITS_GUEST, ["hoard-sockets", "127.0.0.1:0"])?;
    let output = running.wait(TIMEOUT)?;
    output.assert_exit(1);
    assert!(output.stdout.ends_with("holding 8\n"), "{output}");
    // Rust's std on wasm32-wasip2 words `new-socket-limit` as EMFILE's
    // "No file descriptors available".
    assert!(
        output
            .stderr
            .contains("bind 127.0.0.1:0: No file descriptors available"),
        "{output}"
    );
    next_instance_runs(&HARNESS)
}

/// A server that would serve forever is stopped at its deadline, as a command and as
/// a plugin call; the stopped plugin refuses further calls, and a new one works.
#[test]
fn endless_server_trips_timeout() -> Result<()> {
    let timeout = Duration::from_millis(300);
    let sandbox = HARNESS
        .sandbox()
        .policy(serve_on("127.0.0.1"))
        .timeout(timeout);
    let limit = tripped(sandbox, &GUEST, &["echo", "127.0.0.1:0"])?;
    assert_eq!(limit, Limit::Timeout(timeout));

    let sandbox = HARNESS
        .sandbox()
        .policy(serve_on("127.0.0.1"))
        .timeout(timeout)
        .build();
    let mut plugin = HARNESS.block_on(sandbox.instantiate_plugin(&GUEST))?;
    let err = HARNESS
        .block_on(plugin.serve("127.0.0.1:0", 1_000))
        .expect_err("the call is stopped at the deadline");
    assert_eq!(err.limit(), Some(Limit::Timeout(timeout)));
    let again = HARNESS
        .block_on(plugin.dial("127.0.0.1:1", b""))
        .expect_err("a stopped plugin is not called again");
    assert!(matches!(again, SandboxError::Trap(_)), "{again}");

    let mut fresh = HARNESS.block_on(sandbox.instantiate_plugin(&GUEST))?;
    let denied = HARNESS.block_on(fresh.dial("127.0.0.1:1", b""))?;
    assert_eq!(denied, Err(NetError::AccessDenied));
    next_instance_runs(&HARNESS)
}

/// `sockbox run` turns each limit into its documented exit status and one stderr line.
#[test]
fn run_flags_exit_with_each_limits_status() -> Result<()> {
    let wasm = tempfile::NamedTempFile::new()?;
    std::fs::write(wasm.path(), include_bytes!(env!("LIMITS_GUEST_WASM")))?;
    let wasm = wasm.path().to_str().expect("a UTF-8 temp path").to_owned();
    let cases: [(&[&str], i32, &str); 5] = [
        (
            &["--max-memory", "16MiB", "--", "grow-memory"],
            137,
            "sockbox: stopped the guest: the instance exceeded its memory limit (16MiB)\n",
        ),
        (
            &["--cpu-time", "200ms", "--", "spin"],
            152,
            "sockbox: stopped the guest: the instance exceeded its CPU time limit (200ms)\n",
        ),
        (
            // Its time is spent in host calls, and counted all the same.
            &[
                "--cpu-time",
                "300ms",
                "--timeout",
                "20s",
                "--",
                "random-bytes",
                "16777216",
            ],
            152,
            "sockbox: stopped the guest: the instance exceeded its CPU time limit (300ms)\n",
        ),
        (
            &[
                "--allow-listen",
                "tcp://127.0.0.1:*",
                "--max-sockets",
                "3",
                "--",
                "hoard-sockets",
                "127.0.0.1:0",
            ],
            // A cap, not a stop: the guest's fourth bind fails and the guest exits
            // on its own, with its own line.
            1,
            "bind 127.0.0.1:0: No file descriptors available (os error 33)\n",
        ),
        (
            &["--timeout", "300ms", "--cpu-time", "1h", "--", "spin"],
            124,
            "sockbox: stopped the guest: the instance exceeded its timeout (300ms)\n",
        ),
    ];
    for (flags, code, line) in cases {
        let mut command = sockbox();
        command.args(["run", "--wasm", &wasm]).args(flags);
        let finished = Process::run(command)?;
        assert_eq!(finished.status.code(), Some(code), "{flags:?}\n{finished}");
        assert_eq!(finished.stderr, line, "{flags:?}");
    }
    Ok(())
}

/// Limit flags with bad values stop before any guest code runs, with exit status 2.
#[test]
fn bad_limit_flags_are_usage_errors() -> Result<()> {
    let cases: [(&[&str], &str); 6] = [
        (&["--max-memory", "lots"], "`lots` is not a size"),
        // Past u64: once read as "no limit".
        (
            &["--max-memory", "17EiB"],
            "`17EiB` is more than a 32-bit guest can address: use at most 4GiB",
        ),
        (
            &["--max-memory", "5GiB"],
            "`5GiB` is more than a 32-bit guest can address",
        ),
        (&["--max-memory", "0"], "the size must be more than 0"),
        (
            &["--timeout", "soon"],
            "invalid value 'soon' for '--timeout <DURATION>'",
        ),
        (&["--max-sockets", "-1"], "unexpected argument '-1' found"),
    ];
    for (flags, message) in cases {
        let mut command = sockbox();
        command.arg("run").args(flags).args(["--", "help"]);
        let finished = Process::run(command)?;
        assert_eq!(finished.status.code(), Some(2), "{flags:?}\n{finished}");
        assert!(finished.stdout.is_empty(), "{flags:?}\n{finished}");
        assert!(finished.stderr.contains(message), "{flags:?}\n{finished}");
        assert_eq!(finished.stderr.lines().count(), 1, "{flags:?}\n{finished}");
    }
    Ok(())
}
