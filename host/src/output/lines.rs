//! Whole lines from the instances of one run (`--instances`) to the host's stdout or
//! stderr, its `listening on` lines written once for the run.

use std::io::Write as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Whole lines to the host's stdout or stderr from the instances of one run: each
/// instance's lines are written whole, never cut by another's, and its `listening on`
/// lines are held until every instance has printed as many (or ended), then written
/// once each: a peer that waits for one finds every instance listening, and a line
/// every instance prints alike (`listening on 127.0.0.1:8080`) appears once. Clones
/// share one instance's partial line; [`Lines::another`] makes the writer for another
/// instance.
#[derive(Debug, Clone)]
pub struct Lines {
    run: Arc<RunLines>,
    /// The instance's line so far, and how many `listening on` lines it printed.
    mine: Arc<Mutex<(Vec<u8>, usize)>>,
}

#[derive(Debug)]
struct RunLines {
    stderr: bool,
    /// How many instances write.
    instances: usize,
    state: Mutex<Announced>,
}

/// The `listening on` lines of a run, by round: an instance's first such line is in
/// round 0, its second in round 1, and so on.
#[derive(Debug, Default)]
struct Announced {
    rounds: Vec<Round>,
    /// How many `listening on` lines each instance that ended had printed.
    ended: Vec<usize>,
}

#[derive(Debug, Default)]
struct Round {
    /// The distinct lines printed in this round.
    lines: Vec<Vec<u8>>,
    /// How many instances printed theirs.
    printed: usize,
    written: bool,
}

/// The line the harness and `sockbox run` wait for, written once for a run.
const ANNOUNCEMENT: &[u8] = b"listening on ";

impl Lines {
    /// Lines to the host's stdout, from `instances` instances.
    pub fn stdout(instances: usize) -> Self {
        Self::to(false, instances)
    }

    /// Lines to the host's stderr, from `instances` instances.
    pub fn stderr(instances: usize) -> Self {
        Self::to(true, instances)
    }

    fn to(stderr: bool, instances: usize) -> Self {
        Self {
            run: Arc::new(RunLines {
                stderr,
                instances: instances.max(1),
                state: Mutex::default(),
            }),
            mine: Arc::default(),
        }
    }

    /// The writer for another instance of the same run: the same stream and the same
    /// `listening on` rounds, its own partial line.
    pub fn another(&self) -> Self {
        Self {
            run: Arc::clone(&self.run),
            mine: Arc::default(),
        }
    }

    /// Writes every complete line of `buf` (after the partial line so far); with
    /// `end`, the last partial line too, and the instance is done.
    fn write(&self, buf: &[u8], end: bool) {
        let mut mine = self
            .mine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (partial, announced) = &mut *mine;
        partial.extend_from_slice(buf);
        if end && !partial.is_empty() && !partial.ends_with(b"\n") {
            partial.push(b'\n');
        }
        let whole = partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |last| last + 1);
        let lines: Vec<u8> = partial.drain(..whole).collect();
        let mut out = Vec::with_capacity(lines.len());
        let mut state = self
            .run
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for line in lines.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(ANNOUNCEMENT) {
                state.print(*announced, line);
                *announced += 1;
            } else {
                out.extend_from_slice(line);
            }
        }
        if end {
            state.ended.push(*announced);
        }
        drop(mine);
        state.ready(self.run.instances, &mut out);
        drop(state);
        if out.is_empty() {
            return;
        }
        // The host's stream going away must not take the guest down with it.
        let _ = if self.run.stderr {
            std::io::stderr().lock().write_all(&out)
        } else {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&out).and_then(|()| stdout.flush())
        };
    }

    /// Writes the last partial line: the instance has ended.
    pub(crate) fn close(&self) {
        self.write(&[], true);
    }
}

impl Announced {
    /// An instance's `line`, its `round`-th `listening on` line.
    fn print(&mut self, round: usize, line: &[u8]) {
        if self.rounds.len() <= round {
            self.rounds.resize_with(round + 1, Round::default);
        }
        let round = &mut self.rounds[round];
        round.printed += 1;
        if !round.lines.iter().any(|known| known == line) {
            round.lines.push(line.to_vec());
        }
    }

    /// Moves into `out` the lines of each round every instance has printed in or
    /// ended before, in order.
    fn ready(&mut self, instances: usize, out: &mut Vec<u8>) {
        for (index, round) in self.rounds.iter_mut().enumerate() {
            let ended_before = self.ended.iter().filter(|&&count| count <= index).count();
            if round.written || round.printed + ended_before < instances {
                continue;
            }
            for line in &round.lines {
                out.extend_from_slice(line);
            }
            round.written = true;
        }
    }
}

impl IsTerminal for Lines {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Lines {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for Lines {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.write(buf, false);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each instance's `listening on` lines come to, written for the run.
    fn run(instances: usize, printed: &[&[&str]]) -> String {
        let mut announced = Announced::default();
        let mut out = Vec::new();
        let rounds = printed.iter().map(|lines| lines.len()).max().unwrap_or(0);
        for round in 0..rounds {
            for lines in printed {
                if let Some(line) = lines.get(round) {
                    announced.print(round, format!("listening on {line}\n").as_bytes());
                }
            }
        }
        for lines in printed {
            if lines.is_empty() {
                announced.ended.push(0);
            }
        }
        announced.ready(instances, &mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn a_run_says_listening_once_every_instance_does() {
        let same = ["127.0.0.1:8080"];
        assert_eq!(run(2, &[&same, &same]), "listening on 127.0.0.1:8080\n");
        assert_eq!(
            run(2, &[&same]),
            "",
            "the other instance has not listened yet"
        );
        assert_eq!(
            run(2, &[&["127.0.0.1:1"], &["127.0.0.1:2"]]),
            "listening on 127.0.0.1:1\nlistening on 127.0.0.1:2\n",
            "each instance's own port"
        );
        assert_eq!(
            run(2, &[&same, &[]]),
            "listening on 127.0.0.1:8080\n",
            "an instance that ended first does not hold it"
        );
    }
}
