//! Helpers of the end-to-end tests: the built `aix` and `nex` binaries piped together (as
//! `nex-bench` runs them), a sample/fixture tree, and the canonical ledger dump they compare.

use std::path::{Path, PathBuf};

use nex::protocol::{Cursor, RunMode};
use nex_bench::files::{FileCorpusSpec, write_corpus};
use nex_bench::procs::{Binaries, Pair, PairOutcome, root_args};
use rusqlite::Connection;

use crate::import_support::dump_table;

pub fn bins() -> Binaries {
    Binaries {
        aix: PathBuf::from(env!("CARGO_BIN_EXE_aix")),
        nex: PathBuf::from(env!("CARGO_BIN_EXE_nex")),
    }
}

/// A work tree: `claude/` (a Claude Code projects root), `codex/sessions/` (a Codex root),
/// `gemini/tmp/` (a Gemini CLI root), `empty/`.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["claude", "codex/sessions", "gemini/tmp", "empty"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn claude(&self) -> PathBuf {
        self.path().join("claude")
    }

    pub fn codex(&self) -> PathBuf {
        self.path().join("codex/sessions")
    }

    pub fn gemini(&self) -> PathBuf {
        self.path().join("gemini/tmp")
    }

    pub fn roots(&self) -> Vec<String> {
        let mut args = root_args(
            &[self.claude()],
            &[self.codex()],
            &self.path().join("empty"),
        );
        args.push("--gemini-dir".into());
        args.push(self.gemini().display().to_string());
        args
    }

    pub fn ledger(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    /// A tree holding every fixture file ([`fixture_files`]).
    pub fn with_fixtures() -> Self {
        let tree = Tree::new();
        for (rel, src) in fixture_files() {
            let dest = tree.path().join(rel);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(src, dest).unwrap();
        }
        tree
    }

    /// Adds the bench library's generated Claude Code corpus (`write_corpus`, no large
    /// sessions) as projects of the tree's Claude root.
    pub fn add_generated(&self, seed: u64, sessions: usize) {
        let spec = FileCorpusSpec {
            seed,
            sessions,
            large_every: 0,
            ..FileCorpusSpec::default()
        };
        // `write_corpus` writes `<out>/projects/<project>/...`; projects sit one level under
        // the tree's Claude root.
        let gen_dir = self.path().join("gen");
        write_corpus(&spec, &gen_dir).unwrap();
        for e in std::fs::read_dir(gen_dir.join("projects")).unwrap() {
            let p = e.unwrap().path();
            std::fs::rename(&p, self.claude().join(p.file_name().unwrap())).unwrap();
        }
        std::fs::remove_dir_all(&gen_dir).unwrap();
    }
}

pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every fixture file as (destination relative to the tree, source path): each Claude Code
/// fixture dir becomes a project, Codex rollouts go under `codex/sessions/`.
pub fn fixture_files() -> Vec<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    let mut claude = Vec::new();
    files_under(&root.join("claude-code"), &mut claude);
    for p in claude {
        let rel = p.strip_prefix(root.join("claude-code")).unwrap();
        out.push((Path::new("claude").join(rel), p));
    }
    let mut codex = Vec::new();
    files_under(&root.join("codex"), &mut codex);
    for p in codex {
        let name = p.file_name().unwrap().to_owned();
        out.push((Path::new("codex/sessions").join(name), p));
    }
    out
}

/// `$NEX_SAMPLES_DIR` when set to a non-empty directory.
pub fn samples_dir() -> Option<PathBuf> {
    let p = PathBuf::from(std::env::var_os("NEX_SAMPLES_DIR")?);
    let non_empty = std::fs::read_dir(&p).ok()?.next().is_some();
    non_empty.then_some(p)
}

/// `aix emit --mode backfill <roots> | nex import replay --ledger L -`; both must succeed.
pub fn backfill(tree: &Tree, ledger: &Path) -> PairOutcome {
    let mut args: Vec<String> = vec!["emit".into(), "--mode".into(), "backfill".into()];
    args.extend(tree.roots());
    Pair::spawn(&bins(), &args, ledger, false)
        .unwrap()
        .finish()
        .unwrap()
}

/// `aix worker --stdio <roots>` piped into `nex import replay`, started with `mode` and
/// `cursors`.
pub fn worker(tree: &Tree, ledger: &Path, mode: RunMode, cursors: Vec<Cursor>) -> Pair {
    let mut args: Vec<String> = vec!["worker".into(), "--stdio".into()];
    args.extend(tree.roots());
    let mut pair = Pair::spawn(&bins(), &args, ledger, true).unwrap();
    pair.start(mode, cursors, "e2e-run").unwrap();
    pair
}

pub fn open(ledger: &Path) -> Connection {
    nex::ledger::open_agents(ledger).unwrap()
}

/// The canonical dump of a ledger another process may be writing, read through a read-only
/// connection (WAL: never blocked by the writer); `None` while missing or not yet migrated.
pub fn canonical_readonly(ledger: &Path) -> Option<String> {
    let conn =
        Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.busy_timeout(std::time::Duration::from_secs(2)).ok()?;
    let ready: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'session_imports'",
            [],
            |r| r.get(0),
        )
        .ok()?;
    (ready == 1).then(|| canonical(&conn))
}

/// The ledger rows R1/R5 compare: sessions, turns, messages, tool_calls, threads,
/// session_imports, without import timestamps, run ids and `session_imports.updated_at`.
pub fn canonical(conn: &Connection) -> String {
    let tables: [(&str, &str, &[&str]); 6] = [
        ("sessions", "label", &[]),
        ("turns", "id", &[]),
        ("threads", "turn_id", &[]),
        ("messages", "id", &[]),
        ("tool_calls", "id", &[]),
        (
            "session_imports",
            "source, source_provider, source_session_id",
            &["imported_at", "updated_at", "last_run_id"],
        ),
    ];
    tables
        .iter()
        .map(|(t, o, ex)| dump_table(conn, t, o, ex))
        .collect()
}

/// The first differing line of two dumps, for a readable failure.
pub fn first_difference(a: &str, b: &str) -> String {
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let differing = (0..la.len().max(lb.len()))
        .filter(|i| la.get(*i) != lb.get(*i))
        .count();
    for i in 0..la.len().max(lb.len()) {
        let (x, y) = (la.get(i), lb.get(i));
        if x != y {
            let cut = |s: Option<&&str>| s.map(|s| s.chars().take(400).collect::<String>());
            return format!(
                "{differing} differing lines; first: line {i} of {}/{}:\n  left:  {:?}\n  right: {:?}",
                la.len(),
                lb.len(),
                cut(x),
                cut(y)
            );
        }
    }
    "no difference".into()
}

/// Asserts a run report has no failure and no reject.
pub fn assert_clean(o: &PairOutcome) {
    assert_eq!(o.report.failed, 0, "failed items: {:?}", o.report);
    assert!(
        o.report.rejected.is_empty(),
        "rejects: {:?}",
        o.report.rejected
    );
}
