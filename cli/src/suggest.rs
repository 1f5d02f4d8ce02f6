//! `sockbox policy suggest`: the least policy allowing what audits recorded, read from
//! files or standard input, printed as a policy file or as the shim's annotations.

use std::io::{BufRead as _, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};

use sockbox_host::policy::suggest::{self, AuditRecord, Group, parse_record};

/// `sockbox policy suggest`'s arguments.
#[derive(Debug, Args)]
pub(super) struct SuggestArgs {
    /// Audit files (JSON Lines, as `sockbox run --audit` writes them); `-` reads
    /// standard input.
    #[arg(value_name = "AUDIT", required = true)]
    audits: Vec<PathBuf>,
    /// Fold rules together (default: exact, one rule per host and port): `ports`
    /// folds many ports of one host into a list or range, `hosts` many names of one
    /// domain into `*.domain`. Repeatable, or comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT")]
    group: Vec<GroupBy>,
    /// What to print: a policy file for `--policy`, or the same rules as the
    /// containerd shim's pod annotations.
    #[arg(long, value_enum, default_value_t = Format::Toml)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GroupBy {
    /// Many ports of one host into one rule.
    Ports,
    /// Many names of one domain into `*.domain`.
    Hosts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// A policy file, as `--policy` reads it.
    Toml,
    /// `sockbox.io/…` pod annotations, for the shim.
    Annotations,
}

/// Prints the suggestion; warnings go to stderr as `sockbox: warning: …` lines.
pub(super) fn main(args: &SuggestArgs) -> Result<ExitCode> {
    let audits = args
        .audits
        .iter()
        .map(|path| read_audit(path))
        .collect::<Result<Vec<_>>>()?;
    let group = Group {
        ports: args.group.contains(&GroupBy::Ports),
        hosts: args.group.contains(&GroupBy::Hosts),
    };
    let suggestion = suggest::suggest(audits, group);
    let lines = suggestion.lines;
    let sources: Vec<String> = args
        .audits
        .iter()
        .map(|path| match path.to_str() {
            Some("-") => "standard input".to_owned(),
            _ => path.display().to_string(),
        })
        .collect();
    let mut header = format!(
        "Suggested by `sockbox policy suggest` from {} audit line{} ({}).\n",
        lines,
        if lines == 1 { "" } else { "s" },
        sources.join(", ")
    );
    if suggestion.self_uses > 0 {
        header.push_str(&format!(
            "{} self-connection use{} needed no rule.\n",
            suggestion.self_uses,
            if suggestion.self_uses == 1 { "" } else { "s" }
        ));
    }
    header.push_str("Review it, then enforce it: sockbox run --policy FILE …");
    if suggestion.rules.is_empty() {
        header.push_str("\nNo use needs a rule: no rule is the least policy.");
    }
    for warning in &suggestion.warnings {
        eprintln!("sockbox: warning: {warning}");
    }
    match args.format {
        Format::Toml => print!("{}", suggestion.to_toml(&header)),
        Format::Annotations => print!("{}", suggestion.to_annotations(&header)),
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads one audit (`-`: standard input); a bad line is an error naming the file and
/// the line.
fn read_audit(path: &Path) -> Result<Vec<AuditRecord>> {
    let mut records = Vec::new();
    let (name, input): (String, Box<dyn Read>) = if path.as_os_str() == "-" {
        ("standard input".to_owned(), Box::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read the audit {}", path.display()))?;
        (path.display().to_string(), Box::new(file))
    };
    for (index, line) in BufReader::new(input).lines().enumerate() {
        let number = index + 1;
        let line = line.with_context(|| format!("{name}:{number}: cannot read the line"))?;
        match parse_record(&line) {
            Ok(Some(record)) => records.push(record),
            Ok(None) => {}
            Err(why) => bail!("{name}:{number}: {why}"),
        }
    }
    Ok(records)
}
