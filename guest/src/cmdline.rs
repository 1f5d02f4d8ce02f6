//! The one parser of the command's arguments: positional words, and flags in any
//! position as `--flag value` or `--flag=value`. `--` ends the flags, so a message may
//! start with `--`. An unknown flag is named in the error.

/// The flags one command takes: those with a value, and switches.
pub(crate) struct Flags {
    pub with_value: &'static [&'static str],
    pub switches: &'static [&'static str],
}

/// One command line, split: its words in order, and each flag given (once).
#[derive(Debug, Default)]
pub(crate) struct Line<'a> {
    pub words: Vec<&'a str>,
    flags: Vec<(&'static str, Option<&'a str>)>,
}

impl<'a> Line<'a> {
    /// Splits `args` (after the command's name) for command `command`, which takes
    /// `flags`; fails with the usage error's words.
    pub(crate) fn parse(command: &str, args: &[&'a str], flags: &Flags) -> Result<Self, String> {
        let mut line = Self::default();
        let mut args = args.iter().copied();
        while let Some(arg) = args.next() {
            if arg == "--" {
                line.words.extend(args.by_ref());
                break;
            }
            let Some(flag) = arg.strip_prefix("--").filter(|flag| !flag.is_empty()) else {
                line.words.push(arg);
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (flag, None),
            };
            if let Some(&known) = flags.with_value.iter().find(|known| **known == name) {
                let value = match inline {
                    Some(value) => value,
                    None => args
                        .next()
                        .ok_or_else(|| format!("--{name} needs a value"))?,
                };
                line.set(known, Some(value))?;
            } else if let Some(&known) = flags.switches.iter().find(|known| **known == name) {
                if inline.is_some() {
                    return Err(format!("--{name} takes no value"));
                }
                line.set(known, None)?;
            } else {
                return Err(format!("unknown flag --{name} for {command}"));
            }
        }
        Ok(line)
    }

    fn set(&mut self, name: &'static str, value: Option<&'a str>) -> Result<(), String> {
        if self.flags.iter().any(|(given, _)| *given == name) {
            return Err(format!("--{name} is given twice"));
        }
        self.flags.push((name, value));
        Ok(())
    }

    /// Returns the value of flag `name`, if it was given.
    pub(crate) fn value(&self, name: &str) -> Option<&'a str> {
        self.flags
            .iter()
            .find(|(given, _)| *given == name)
            .and_then(|(_, value)| *value)
    }

    /// Reports whether switch `name` was given.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(given, _)| *given == name)
    }
}
