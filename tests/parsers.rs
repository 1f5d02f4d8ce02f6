//! Every parser fed by a user or a peer, under property tests: rules, policy files,
//! sizes, names, and the guest's command line. None panics; every error is one line;
//! what can be printed reads back as itself.

use proptest::prelude::*;
use sockbox_cli::parse_size;
use sockbox_host::Policy;
use sockbox_host::policy::{Rule, normalize_name};

use crate::common::{GUEST, HARNESS};

/// Text that is often close to a rule: schemes, hosts, ports and punctuation.
fn rule_like() -> impl Strategy<Value = String> {
    let scheme = prop_oneof!["tcp", "udp", r"\*", "[a-z]{0,4}", ""];
    let host = prop_oneof![
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?",
        r"\[[0-9a-f:]{0,20}\](/[0-9]{1,3})?",
        "(\\*\\.)?[a-zA-Z0-9ü.-]{0,20}",
        r"\{[0-9a-z.,]{0,20}\}",
        r"\*",
        ".{0,12}",
    ];
    let ports = prop_oneof![
        "[0-9]{1,6}",
        "[0-9]{1,5}-[0-9]{1,5}",
        r"\*",
        r"\{[0-9,]{0,12}\}",
        ".{0,4}"
    ];
    (
        scheme,
        host,
        ports,
        prop_oneof!["://", ":/", ""],
        prop_oneof![":", ""],
    )
        .prop_map(|(scheme, host, ports, sep, colon)| format!("{scheme}{sep}{host}{colon}{ports}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A rule parses or fails with one line; a parsed rule prints as text that parses
    /// back to the same rule.
    #[test]
    fn rules_round_trip_or_fail_in_one_line(text in rule_like()) {
        match text.parse::<Rule>() {
            Ok(rule) => {
                let printed = rule.to_string();
                let again: Rule = printed.parse().map_err(|err| TestCaseError::fail(format!("{printed}: {err}")))?;
                prop_assert_eq!(again, rule);
            }
            Err(err) => prop_assert_eq!(err.to_string().lines().count(), 1, "{}", err),
        }
    }

    /// Arbitrary text, control characters included, is a rule or a one-line error (a
    /// newline in a rule once made a two-line error: found by `fuzz/`'s `rule`).
    #[test]
    fn any_text_is_a_rule_or_an_error(text in "(?s).{0,40}") {
        if let Err(err) = text.parse::<Rule>() {
            prop_assert_eq!(err.to_string().lines().count(), 1);
        }
    }

    /// A policy file parses or fails with one line naming the file.
    #[test]
    fn policy_files_parse_or_fail_in_one_line(
        key in prop_oneof!["allow", "listen", "accept", "deny", "inherit_network", "[a-z]{1,6}"],
        value in prop_oneof![rule_like().prop_map(|r| format!("[{r:?}]")), Just("true".to_owned()), ".{0,12}"],
        extra in prop_oneof![Just(String::new()), Just("\n[table]\nx = 1".to_owned()), ".{0,8}"],
    ) {
        let text = format!("{key} = {value}{extra}");
        if let Err(err) = Policy::from_toml(&text, "p.toml") {
            let message = err.to_string();
            prop_assert_eq!(message.lines().count(), 1, "{}", message);
            prop_assert!(message.starts_with("p.toml"), "{}", message);
        }
    }

    /// A size parses to at most 4GiB, or fails with one line.
    #[test]
    fn sizes_parse_within_the_address_space(
        number in prop_oneof!["[0-9]{1,25}", "[0-9]{1,4}\\.[0-9]{1,3}"],
        unit in prop_oneof!["", "B", "KiB", "MiB", "GiB", "TiB", "EiB", "KB", "mb", "[a-z]{1,3}"],
    ) {
        match parse_size(&format!("{number}{unit}")) {
            Ok(bytes) => prop_assert!(bytes > 0 && bytes <= 4 << 30),
            Err(err) => prop_assert_eq!(err.lines().count(), 1),
        }
    }

    /// Name normalization is idempotent and never yields an invalid name.
    #[test]
    fn names_normalize_idempotently(name in "[a-zA-Z0-9ü_.-]{0,70}") {
        if let Ok(normalized) = normalize_name(&name) {
            prop_assert_eq!(normalize_name(&normalized), Ok(normalized.clone()));
            prop_assert!(normalized.len() <= 253);
            prop_assert!(normalized.split('.').all(|label| !label.is_empty() && label.len() <= 63));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The guest's command line, under no network: any arguments end in a status
    /// (0; 1 with one `Error:` line; 2 with one `Error:` line and the usage), never a
    /// trap.
    #[test]
    fn guest_command_lines_end_in_a_status(
        command in prop_oneof!["dial", "listen", "echo", "udp-echo", "udp-send", "lookup", "pair", "help", "[a-z-]{0,8}"],
        args in prop::collection::vec(prop_oneof![
            "[0-9.:\\[\\]a-z]{0,24}",
            Just("--timeout".to_owned()),
            Just("--count".to_owned()),
            Just("--copy".to_owned()),
            Just("--forward".to_owned()),
            Just("--wait".to_owned()),
            "[0-9]{1,4}(ms|s|h|x)?",
            ".{0,10}",
        ], 0..4),
    ) {
        // No network, not even a self connection: nothing can wait for a peer.
        let sandbox = HARNESS.sandbox().policy(Policy::deny_all().without_self()).stdout(sockbox_host::output::Stdio::capture()).stderr(sockbox_host::output::Stdio::capture()).build();
        let argv: Vec<String> = std::iter::once(command).chain(args).collect();
        let output = HARNESS.block_on(sandbox.run_command(&GUEST, argv.clone())).map_err(|err| TestCaseError::fail(format!("{argv:?}: {err}")))?;
        let code = match output.status {
            sockbox_host::Exit::Code(code) => code,
            sockbox_host::Exit::Trap(trap) => return Err(TestCaseError::fail(format!("{argv:?} trapped: {trap}"))),
        };
        let lines: Vec<&str> = output.stderr.lines().collect();
        match code {
            0 => {}
            // A failure: one `Error: …` line.
            1 => prop_assert!(lines.len() == 1 && lines[0].starts_with("Error: "), "{:?}: {}", argv, output),
            // Bad usage: one `Error: …` line, then the usage text.
            2 => prop_assert!(
                lines.len() > 2 && lines[0].starts_with("Error: ") && lines[1].is_empty() && lines[2].starts_with("usage: "),
                "{:?}: {}", argv, output
            ),
            _ => prop_assert!(false, "{:?}: {}", argv, output),
        }
    }
}
