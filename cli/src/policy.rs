//! Policy flags shared by `run` and `policy explain`, and the `policy` subcommands.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use sockbox_host::policy::{
    Decision, Direction, Mode, Nat64Prefix, Policy, SocketAddrUse, Subject, Transport, UseKind,
    Verdict, parse_use,
};

fn parse_nat64_prefix(text: &str) -> Result<Nat64Prefix, String> {
    text.parse()
}

/// The flags that make a policy: a file, then rules that add to it.
#[derive(Debug, Clone, Args)]
pub(super) struct PolicyArgs {
    /// Read rules from a TOML policy file (keys: allow, listen, accept, deny, mode,
    /// inherit_network, allow_special, no_self, nat64_prefixes, publish); the flags add
    /// to it.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Allow connecting (tcp) or sending (udp) to what RULE matches (repeatable),
    /// e.g. tcp://127.0.0.1:8080, tcp://*.example.com:443.
    #[arg(long, value_name = "RULE")]
    allow: Vec<String>,
    /// Allow binding and listening on what RULE matches (repeatable), e.g. tcp://127.0.0.1:*.
    #[arg(long, value_name = "RULE")]
    allow_listen: Vec<String>,
    /// Accept only peers RULE matches (repeatable; default: any peer once listening is
    /// allowed), e.g. tcp://10.0.0.0/8:*.
    #[arg(long, value_name = "RULE")]
    allow_accept: Vec<String>,
    /// Deny what RULE matches, whatever allows it (repeatable).
    #[arg(long, value_name = "RULE")]
    deny: Vec<String>,
    /// Allow every network use but what --deny rules deny, like `wasmtime run -S inherit-network`.
    #[arg(long)]
    inherit_network: bool,
    /// Turn off the special-address preset: cloud metadata endpoints, link-local,
    /// multicast, broadcast and the unspecified address (in every IPv6 spelling) are
    /// then judged by the rules alone. Without it they are denied unless a rule names
    /// them explicitly, even under --inherit-network or `*`.
    #[arg(long)]
    allow_special: bool,
    /// Turn off self connections: without it, an instance may bind a loopback address on
    /// port 0, listen there, connect to that listener of its own and accept its own
    /// connections without a rule — the socket pair Python's asyncio makes on WASI.
    /// Connections from anyone else are still judged by the rules.
    #[arg(long)]
    no_self: bool,
    /// A NAT64 prefix of this network's own (repeatable), e.g. 64:ff9b:1::/48: its
    /// addresses carry an IPv4 address, and deny rules and the special-address preset
    /// judge them as that address too, as they always do 64:ff9b::/96's.
    #[arg(long, value_name = "PREFIX", value_parser = parse_nat64_prefix)]
    nat64_prefix: Vec<Nat64Prefix>,
    /// Audit only: decide and record every use as usual, but let would-be denials go
    /// ahead, recorded as `would-deny` (on stderr, or in --audit's file), with a count
    /// at exit. For trying a policy on a live workload before enforcing it.
    #[arg(long)]
    audit_only: bool,
    /// Publish a guest port on the host, like `docker run -p`: the guest binds
    /// GUEST_PORT, the host binds HOST_PORT instead (0: any free port, printed as
    /// `sockbox: published …`), and the guest still sees GUEST_PORT. Repeatable;
    /// add /udp for UDP. The policy judges GUEST_PORT. E.g. 8080:80, 0:53/udp.
    #[arg(long, value_name = "HOST_PORT:GUEST_PORT")]
    publish: Vec<String>,
}

impl PolicyArgs {
    /// Builds the policy: the file's rules first, then the flags' in the order above.
    pub(super) fn build(&self) -> Result<Policy> {
        let policy = match &self.policy {
            Some(path) => Policy::load(path)?,
            None => Policy::deny_all(),
        };
        self.build_on(policy)
    }

    /// The `--policy` file, if one was given.
    pub(crate) fn file(&self) -> Option<&Path> {
        self.policy.as_deref()
    }

    /// Builds the policy as [`PolicyArgs::build`] does, from `text` as the file's
    /// contents (read from `source`): a reload.
    pub(crate) fn build_from_text(&self, text: &str, source: &str) -> Result<Policy> {
        self.build_on(Policy::from_toml(text, source)?)
    }

    /// `policy` with the flags' settings and rules added.
    fn build_on(&self, mut policy: Policy) -> Result<Policy> {
        if self.inherit_network {
            policy = policy.with_inherit_network();
        }
        if self.allow_special {
            policy = policy.with_special_allowed();
        }
        if self.no_self {
            policy = policy.without_self();
        }
        for prefix in &self.nat64_prefix {
            policy.push_nat64_prefix(*prefix);
        }
        if self.audit_only {
            policy = policy.with_mode(Mode::Audit);
        }
        for publish in &self.publish {
            policy.push_publish(publish.parse()?)?;
        }
        for (direction, rules) in [
            (Direction::Allow, &self.allow),
            (Direction::Listen, &self.allow_listen),
            (Direction::Accept, &self.allow_accept),
            (Direction::Deny, &self.deny),
        ] {
            for rule in rules {
                policy.push(direction, rule.parse()?)?;
            }
        }
        Ok(policy)
    }
}

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCommand {
    /// Parse a policy file and list its effective rules (exit 2 if it is invalid).
    Check {
        /// The policy file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the verdict for one use and the rule that decides it (exit 0 allowed, 1 denied).
    #[command(
        after_help = "USE is one of: connect tcp, bind tcp, listen tcp, accept tcp, \
                            bind udp, send udp, receive udp — followed by ADDR \
                            (10.1.2.3:443, [::1]:80, or NAME:PORT as once the guest has \
                            looked NAME up); or lookup NAME.\n\n\
                            Example: sockbox policy explain --allow tcp://10.0.0.0/8:443 \
                            connect tcp 10.1.2.3:443\n\n\
                            A self connection: bind tcp 127.0.0.1:0 is one; with --own, \
                            listen, connect and accept are decided as on the instance's \
                            own self-connection sockets."
    )]
    Explain {
        #[command(flatten)]
        policy: PolicyArgs,
        /// Decide the use as one on the instance's own self-connection sockets: listening
        /// on a socket it bound on a loopback port 0, connecting to such a listener,
        /// accepting its own socket's connection.
        #[arg(long)]
        own: bool,
        /// The use: VERB TRANSPORT ADDR, or lookup NAME.
        #[arg(value_name = "USE", required = true, num_args = 2..=3)]
        attempt: Vec<String>,
    },
    /// Print the least policy that allows every use the audits recorded (allowed,
    /// denied and would-deny), for review before enforcing it.
    #[command(
        after_help = "The loop: run the workload with `sockbox run --audit-only \
                            --audit audit.jsonl …`, then `sockbox policy suggest audit.jsonl \
                            > policy.toml`, review it, and run with `--policy policy.toml`.\n\n\
                            Names stay names: a connection to an address a lookup gave \
                            becomes a rule on the name looked up. Peers' and \
                            system-picked ports become `*`. A use the special-address \
                            preset refused is listed commented out, with a warning.\n\n\
                            Exit status: 0 printed, 2 an audit that cannot be read \
                            (one line naming the file and line)."
    )]
    Suggest(crate::suggest::SuggestArgs),
}

pub(super) fn main(command: PolicyCommand) -> Result<ExitCode> {
    match command {
        PolicyCommand::Check { file } => {
            let policy = Policy::load(&file)?;
            print!("{}", check_report(&policy));
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Explain {
            policy,
            own,
            attempt,
        } => {
            let policy = policy.build()?;
            let decision = explain(&policy, &attempt, own)?;
            println!("{decision}");
            Ok(if decision.allowed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        PolicyCommand::Suggest(args) => crate::suggest::main(&args),
    }
}

/// The effective rules, one per line, then what the sandbox enables and notes on rules
/// that can have no effect.
fn check_report(policy: &Policy) -> String {
    let mut report = policy.to_string();
    report.push_str(match policy.mode() {
        Mode::Enforce => "mode: enforce (denials are refused)\n",
        Mode::Audit => "mode: audit (denials are recorded as would-deny; nothing is refused)\n",
    });
    report.push_str(if policy.allows_special() {
        "special addresses: judged by the rules alone (allow_special)\n"
    } else {
        "special addresses: denied unless a rule names them (metadata, link-local, multicast, broadcast, unspecified)\n"
    });
    report.push_str(if policy.allows_self() {
        "self connections: on (an instance's own loopback socket pairs need no rule)\n"
    } else {
        "self connections: off (no_self)\n"
    });
    let on = |yes: bool| if yes { "on" } else { "off" };
    report.push_str(&format!(
        "tcp: {}, udp: {}, name lookups: {}\n",
        on(policy.uses(Transport::Tcp)),
        on(policy.uses(Transport::Udp)),
        on(policy.uses_names()),
    ));
    for transport in [Transport::Tcp, Transport::Udp] {
        let has = |direction: Direction| {
            policy.rules().any(|(rule_ref, rule)| {
                rule_ref.direction == direction && rule.scheme().covers(transport)
            })
        };
        if has(Direction::Accept) && !has(Direction::Listen) && !policy.inherits_network() {
            report.push_str(&format!(
                "note: {transport} accept rules have no effect without a {transport} listen rule\n"
            ));
        }
    }
    report
}

/// Decides `attempt` (`connect tcp 10.1.2.3:443`, `lookup example.com`).
/// With `own`, a socket use is decided as on the instance's own self-connection sockets.
fn explain(policy: &Policy, attempt: &[String], own: bool) -> Result<Decision> {
    let (use_kind, subject, verdict) = match attempt {
        [verb, name] if verb == "lookup" => (
            UseKind::Lookup,
            Subject::Name(name.clone()),
            policy.decide_lookup(name),
        ),
        [verb, transport, addr] => {
            let socket_use = parse_use(verb, transport).map_err(anyhow::Error::msg)?;
            let (subject, verdict) = decide(policy, socket_use, addr, own)?;
            (socket_use.into(), subject, verdict)
        }
        _ => bail!(
            "expected VERB TRANSPORT ADDR (connect tcp 10.1.2.3:443) or lookup NAME, got `{}`",
            attempt.join(" ")
        ),
    };
    // In audit mode the verdict is what enforcing would do: a denial shows as
    // `would deny`, and still exits 1.
    let would_deny = !verdict.allowed && policy.mode() == Mode::Audit;
    Ok(Decision {
        would_deny,
        ..Decision::new(policy, use_kind, subject, verdict)
    })
}

fn decide(
    policy: &Policy,
    socket_use: SocketAddrUse,
    addr: &str,
    own: bool,
) -> Result<(Subject, Verdict)> {
    if let Ok(addr) = addr.parse::<SocketAddr>() {
        let verdict = if own {
            policy.decide_own(addr, socket_use, &[])
        } else {
            policy.decide(addr, socket_use)
        };
        return Ok((Subject::Addr(addr), verdict));
    }
    if own {
        bail!("--own decides an address, not a name: write 127.0.0.1:PORT or [::1]:PORT");
    }
    let Some((name, port)) = addr.rsplit_once(':') else {
        bail!("`{addr}` is not HOST:PORT");
    };
    let Ok(port) = port.parse::<u16>() else {
        bail!("`{port}` in `{addr}` is not a port (0-65535)");
    };
    if name.is_empty() || name.contains(':') || name.parse::<std::net::IpAddr>().is_ok() {
        bail!("`{addr}` is not an address: write 10.1.2.3:443, [::1]:443 or NAME:443");
    }
    Ok((
        Subject::Name(addr.to_owned()),
        policy.decide_name(name, port, socket_use),
    ))
}
