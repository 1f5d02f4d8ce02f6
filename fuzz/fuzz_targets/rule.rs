//! A rule parses, or fails with one line; a parsed rule prints as text that parses
//! back to the same rule, and deciding with it never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockbox_host::Policy;
use sockbox_host::policy::{Direction, Rule, SocketAddrUse};

fuzz_target!(|text: &str| {
    match text.parse::<Rule>() {
        Ok(rule) => {
            let printed = rule.to_string();
            let again: Rule = printed
                .parse()
                .unwrap_or_else(|err| panic!("{printed:?} does not parse back: {err}"));
            assert_eq!(again, rule, "{text:?} printed as {printed:?}");
            for direction in Direction::ALL {
                if let Ok(policy) = Policy::deny_all().with_rule(direction, rule.clone()) {
                    let addr = "10.1.2.3:443".parse().expect("an address");
                    let _ = policy.decide(addr, SocketAddrUse::TcpConnect);
                    let _ = policy.decide_name("example.com", 443, SocketAddrUse::TcpConnect);
                    let _ = policy.decide_lookup("example.com");
                }
            }
        }
        Err(err) => {
            let message = err.to_string();
            assert_eq!(message.lines().count(), 1, "{message:?}");
        }
    }
});
