//! A policy file parses, or fails with one line that names the file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockbox_host::Policy;

fuzz_target!(|text: &str| {
    if let Err(err) = Policy::from_toml(text, "fuzz.toml") {
        let message = err.to_string();
        assert_eq!(message.lines().count(), 1, "{message:?}");
        assert!(message.starts_with("fuzz.toml"), "{message:?}");
    }
});
