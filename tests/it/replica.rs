//! The replica (issue 14) against a real PostgreSQL started here (`nex_bench::pg`): two
//! machines' ledgers (two NEX_HOMEs, backfill then tail) replicated row for row, deletes
//! included; the faults (connection killed between a batch and its watermark, a batch
//! replayed, the daemon killed -9 mid-batch, PostgreSQL stopped and restarted) each ending
//! equal; credentials never printed or logged. Skipped, saying so, where PostgreSQL is not
//! installed (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use nex_bench::files::{FileCorpusSpec, TurnWriter, session_id, write_corpus};
use nex_bench::home::{BenchHome, Daemon};
use nex_bench::pg::{PgError, PgServer, compare};
use nex_bench::rng::Rng;
use serde_json::Value;

use crate::e2e_support::bins;

const SECRET: &str = "pw-SeCrEt-4711";
const DEADLINE: Duration = Duration::from_secs(90);

fn server() -> Option<PgServer> {
    match PgServer::start() {
        Ok(pg) => Some(pg),
        Err(PgError::NotInstalled) => {
            eprintln!("SKIPPED: PostgreSQL is not installed (apt-get install postgresql)");
            None
        }
        Err(e) => panic!("cannot start PostgreSQL: {e}"),
    }
}

/// One simulated machine: a corpus of Claude Code files and a NEX_HOME whose config names the
/// replica (with a password in the URL) and the machine.
struct Machine {
    dir: tempfile::TempDir,
    home: BenchHome,
    name: String,
    seed: u64,
    appended: u64,
}

impl Machine {
    /// Writes config.toml: the replica (with the password) and the machine, or neither.
    fn configure(&self, pg: Option<&PgServer>) {
        self.configure_url(
            pg.map(|pg| format!("{} password={SECRET}", pg.url()))
                .as_deref(),
        );
    }

    /// Writes config.toml: the replica at `url` and the machine, or neither.
    fn configure_url(&self, url: Option<&str>) {
        let config = match url {
            Some(url) => format!(
                "[replica]\nurl = \"{}\"\nmachine = \"{}\"\n",
                url.replace('\\', "\\\\").replace('"', "\\\""),
                self.name
            ),
            None => String::new(),
        };
        std::fs::write(self.dir.path().join("home").join("config.toml"), config).unwrap();
    }

    /// The change log's (rows, first seq, last seq).
    fn change_log(&self) -> (i64, i64, i64) {
        rusqlite::Connection::open_with_flags(
            self.ledger(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap()
        .query_row(
            "SELECT count(*), coalesce(min(seq), 0), coalesce(max(seq), 0) FROM change_log",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }

    /// `nex replica sync --json`, which must succeed.
    fn synced(&self) -> Value {
        self.json(&["replica", "sync", "--json"])
    }

    fn new(pg: &PgServer, name: &str, seed: u64, sessions: usize) -> Machine {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("claude");
        let spec = FileCorpusSpec {
            seed,
            sessions,
            large_every: 0,
            subagent_every: 3,
            ..FileCorpusSpec::default()
        };
        write_corpus(&spec, &corpus).unwrap();
        let home_dir = dir.path().join("home");
        std::fs::create_dir_all(&home_dir).unwrap();
        let home = BenchHome::create(&home_dir, &corpus, &bins()).unwrap();
        std::fs::write(
            home_dir.join("config.toml"),
            format!(
                "[replica]\nurl = \"{} password={SECRET}\"\nmachine = \"{name}\"\n",
                pg.url()
            ),
        )
        .unwrap();
        Machine {
            dir,
            home,
            name: name.to_owned(),
            seed,
            appended: 0,
        }
    }

    fn ledger(&self) -> PathBuf {
        self.home.ledger()
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = self.home.nex(args).stdin(Stdio::null()).output().unwrap();
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains(SECRET),
            "`nex {args:?}` printed the password: {all}"
        );
        out
    }

    fn backfill(&self) {
        let out = self.run(&["import", "backfill", "--wait", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `nex ARGS` that must succeed, its stdout as JSON.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "nex {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn sync(&self) -> Output {
        self.run(&["replica", "sync", "--json"])
    }

    fn status(&self) -> Value {
        let out = self.run(&["replica", "status", "--json"]);
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn daemon(&self) -> Daemon {
        Daemon::spawn(&self.home, &self.log()).unwrap()
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// Appends one complete turn to the machine's first session; returns its message id.
    fn append_turn(&mut self) -> String {
        self.appended += 1;
        let sid = session_id(self.seed, 0);
        let path = nex_bench::files::projects_dir(&self.home.claude_config_dir)
            .join("-work-proj-00")
            .join(format!("{sid}.jsonl"));
        let now = 1_800_000_000_000 + self.appended as i64 * 1000;
        let mut w = TurnWriter::new(&sid, None, Rng::new(self.seed * 1000 + self.appended), now)
            .resume_after(100_000 * self.appended, now);
        let t = w.turn(None);
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(t.text.as_bytes()).unwrap();
        nex::import::scoped_id(
            nex::import::IdKind::Message,
            "aix",
            "claude-code",
            &sid,
            &t.user_uuid,
        )
    }

    fn has_message(&self, id: &str) -> bool {
        rusqlite::Connection::open_with_flags(
            self.ledger(),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| {
            c.query_row("SELECT count(*) FROM messages WHERE id = ?1", [id], |r| {
                r.get::<_, i64>(0)
            })
        })
        .is_ok_and(|n| n == 1)
    }

    fn assert_log_clean(&self) {
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        assert!(!log.contains(SECRET), "the daemon logged the password");
    }
}

/// Polls `cond` until it holds or the deadline passes.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the replica equals `m`'s ledger; the last difference on timeout.
fn wait_equal(pg: &PgServer, m: &Machine) -> u64 {
    let start = Instant::now();
    loop {
        match compare(pg, &m.ledger(), &m.name) {
            Ok(rows) => return rows,
            Err(diff) => assert!(start.elapsed() < DEADLINE, "replica never equal: {diff}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn watermark(pg: &PgServer, machine: &str) -> i64 {
    pg.scalar(&format!(
        "SELECT seq FROM nex.replica_watermarks WHERE machine = '{machine}'"
    ))
    .unwrap_or(0)
}

#[test]
fn two_machines_backfill_and_tail_equal_the_replica_row_for_row() {
    let Some(pg) = server() else { return };
    let mut a = Machine::new(&pg, "laptop", 11, 5);
    let mut b = Machine::new(&pg, "desktop", 12, 4);
    a.backfill();
    b.backfill();

    // Before any replication: status names the host only, and the whole backlog as lag.
    let st = a.status();
    assert_eq!(st["enabled"], true);
    assert_eq!(st["machine"], "laptop");
    assert_eq!(
        st["url_host"],
        pg.socket_dir().display().to_string() + "/postgres"
    );
    assert!(st["lag_changes"].as_i64().unwrap() > 0, "{st}");

    // Machine A catches up without a daemon.
    let out = a.sync();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["rows"].as_u64().unwrap() > 0);
    let rows_a = compare(&pg, &a.ledger(), "laptop").unwrap();
    assert!(rows_a > 50, "{rows_a}");
    let st = a.status();
    assert_eq!(st["lag_changes"], 0, "{st}");
    assert_eq!(st["lag_ms"], 0, "{st}");
    assert!(
        st["last_ok_at"].as_i64().is_some() && st["last_error"].is_null(),
        "{st}"
    );

    // Both daemons: B's backlog by its replicator, then turns appended on both (tail).
    let mut da = a.daemon();
    let mut db = b.daemon();
    wait_equal(&pg, &b);
    let ids = [a.append_turn(), a.append_turn()];
    let id_b = b.append_turn();
    wait_for("the appended turns in the ledgers", || {
        ids.iter().all(|id| a.has_message(id)) && b.has_message(&id_b)
    });
    wait_equal(&pg, &a);
    wait_equal(&pg, &b);

    // A delete in a ledger (as rule 13's replacement does) reaches the replica.
    let conn = rusqlite::Connection::open(a.ledger()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    // The search index's triggers read tool calls through nex's SQL functions.
    nex::ledger::text::register(&conn).unwrap();
    let gone: String = conn
        .query_row("SELECT id FROM tool_calls ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute("DELETE FROM tool_calls WHERE id = ?1", [&gone])
        .unwrap();
    drop(conn);
    wait_equal(&pg, &a);
    assert_eq!(
        pg.scalar(&format!(
            "SELECT count(*) FROM nex.tool_calls WHERE id = '{gone}'"
        ))
        .unwrap(),
        0
    );
    // The other machine's rows were never touched by A's replication.
    assert_eq!(compare(&pg, &b.ledger(), "desktop").map(|_| ()), Ok(()));
    wait_for("status current", || a.status()["lag_changes"] == 0);
    reports_cover_both_machines(&a, &b);

    // A second ledger under a name already taken is refused, and A's rows stay A's.
    let c = Machine::new(&pg, "laptop", 13, 1);
    c.backfill();
    let out = c.sync();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replica_machine_taken"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    compare(&pg, &a.ledger(), "laptop").unwrap();

    da.stop(Duration::from_secs(20));
    db.stop(Duration::from_secs(20));
    a.assert_log_clean();
    b.assert_log_clean();
}

#[test]
fn faults_each_end_equal_nothing_lost_or_duplicated() {
    let Some(pg) = server() else { return };
    let mut m = Machine::new(&pg, "box", 21, 4);
    m.backfill();

    // 1. The connection killed between a batch's rows and its watermark.
    let pause = m.dir.path().join("pause");
    std::fs::create_dir_all(&pause).unwrap();
    let sync: Child = m
        .home
        .nex(&["replica", "sync", "--json"])
        .env(nex::replica::replicator::PAUSE_ENV, &pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the paused batch", || pause.join("paused").exists());
    let pid = std::fs::read_to_string(pause.join("paused")).unwrap();
    // The rows are written but not committed: the replica shows nothing yet.
    assert_eq!(pg.scalar("SELECT count(*) FROM nex.turns").unwrap(), 0);
    pg.query(&format!("SELECT pg_terminate_backend({pid})"))
        .unwrap();
    std::fs::write(pause.join("resume"), "").unwrap();
    let out = sync.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replica_unreachable"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(watermark(&pg, "box"), 0);
    assert_eq!(pg.scalar("SELECT count(*) FROM nex.turns").unwrap(), 0);
    assert!(m.sync().status.success());
    let rows = compare(&pg, &m.ledger(), "box").unwrap();

    // 2. Batches replayed: the watermark set back (half, then all the way): equal, no
    // duplicate, and the replayed upserts change nothing.
    let head = watermark(&pg, "box");
    for back_to in [head / 2, 0] {
        pg.query(&format!(
            "UPDATE nex.replica_watermarks SET seq = {back_to} WHERE machine = 'box'"
        ))
        .unwrap();
        let xmin_before = pg
            .query("SELECT xmin::text FROM nex.turns ORDER BY id")
            .unwrap();
        assert!(m.sync().status.success());
        assert_eq!(compare(&pg, &m.ledger(), "box").unwrap(), rows);
        assert_eq!(watermark(&pg, "box"), head);
        let xmin_after = pg
            .query("SELECT xmin::text FROM nex.turns ORDER BY id")
            .unwrap();
        assert_eq!(xmin_before, xmin_after, "a replayed batch rewrote rows");
    }

    // 3. The daemon killed -9 mid-batch (rows written, watermark not).
    let id = m.append_turn();
    let pause2 = m.dir.path().join("pause2");
    std::fs::create_dir_all(&pause2).unwrap();
    let mut daemon = m
        .home
        .nex(&["daemon"])
        .env(nex::replica::replicator::PAUSE_ENV, &pause2)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the daemon's paused batch", || {
        pause2.join("paused").exists()
    });
    let before = watermark(&pg, "box");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    assert_eq!(watermark(&pg, "box"), before);
    let mut d = m.daemon();
    wait_for("the appended turn", || m.has_message(&id));
    wait_equal(&pg, &m);

    // 4. PostgreSQL stopped while the daemon replicates: the ledger keeps importing, status
    // says why the replica lags, and it catches up by itself once the server is back.
    pg.stop().unwrap();
    let ids = [m.append_turn(), m.append_turn()];
    wait_for("imports while the replica is down", || {
        ids.iter().all(|id| m.has_message(id))
    });
    wait_for("the replica's error in status", || {
        let st = m.status();
        st["last_error"]["code"] == "replica_unreachable"
    });
    pg.start_again().unwrap();
    wait_equal(&pg, &m);
    wait_for("status current again", || {
        let st = m.status();
        st["lag_changes"] == 0 && st["last_error"].is_null()
    });
    d.stop(Duration::from_secs(20));
    m.assert_log_clean();
}

#[test]
fn the_change_log_holds_only_what_the_replica_lacks_and_resumes_exactly() {
    let Some(pg) = server() else { return };
    let mut m = Machine::new(&pg, "pruned", 31, 4);
    m.backfill();
    let (logged, _, head) = m.change_log();
    assert!(logged > 50 && logged == head, "{logged} {head}");

    // A sync leaves the change at the watermark only.
    let report = m.synced();
    assert_eq!(report["resends"], 0, "{report}");
    assert_eq!(report["watermark"], head);
    assert_eq!(m.change_log(), (1, head, head));
    compare(&pg, &m.ledger(), "pruned").unwrap();

    // New changes number on from there, and the next sync sends exactly them.
    let id = m.append_turn();
    m.backfill();
    assert!(m.has_message(&id));
    let (rows, first, last) = m.change_log();
    assert_eq!((first, rows), (head, last - head + 1));
    let report = m.synced();
    assert_eq!(report["resends"], 0, "{report}");
    assert_eq!(report["changes"], last - head, "{report}");
    assert_eq!(m.change_log(), (1, last, last));
    compare(&pg, &m.ledger(), "pruned").unwrap();

    // The daemon prunes once current, and a restart resumes from the watermark (no resend).
    let mut d = m.daemon();
    let id = m.append_turn();
    wait_for("the appended turn", || m.has_message(&id));
    wait_equal(&pg, &m);
    wait_for("the log pruned to the watermark", || {
        let (rows, first, _) = m.change_log();
        rows == 1 && first == watermark(&pg, "pruned")
    });
    d.stop(Duration::from_secs(20));
    let id = m.append_turn();
    let mut d = m.daemon();
    wait_for("the turn appended while stopped", || m.has_message(&id));
    wait_equal(&pg, &m);
    wait_for("the log pruned again", || m.change_log().0 == 1);
    d.stop(Duration::from_secs(20));
    let log = std::fs::read_to_string(m.log()).unwrap();
    assert!(!log.contains("sending the whole ledger"), "{log}");

    // Without a replica the daemon keeps the log empty (but its last change); configured
    // again, the replica receives the whole ledger by one resend.
    m.configure(None);
    let id = m.append_turn();
    let mut d = m.daemon();
    wait_for("the turn imported without a replica", || m.has_message(&id));
    d.stop(Duration::from_secs(20));
    let mut d = m.daemon();
    wait_for("the log emptied without a replica", || {
        m.change_log().0 == 1
    });
    d.stop(Duration::from_secs(20));
    m.configure(Some(&pg));
    let report = m.synced();
    assert_eq!(report["resends"], 1, "{report}");
    compare(&pg, &m.ledger(), "pruned").unwrap();

    // A resend also deletes what the ledger deleted meanwhile: a tool call deleted, then the
    // log pruned past it before the replica heard of the delete.
    let conn = rusqlite::Connection::open(m.ledger()).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    // The search index's triggers read tool calls through nex's SQL functions.
    nex::ledger::text::register(&conn).unwrap();
    let gone: String = conn
        .query_row("SELECT id FROM tool_calls ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute("DELETE FROM tool_calls WHERE id = ?1", [&gone])
        .unwrap();
    conn.execute("UPDATE sessions SET updated_at = updated_at + 1", [])
        .unwrap();
    conn.execute(
        "DELETE FROM change_log WHERE seq < (SELECT max(seq) FROM change_log)",
        [],
    )
    .unwrap();
    drop(conn);
    let report = m.synced();
    assert_eq!(report["resends"], 1, "{report}");
    compare(&pg, &m.ledger(), "pruned").unwrap();
    assert_eq!(
        pg.scalar(&format!(
            "SELECT count(*) FROM nex.tool_calls WHERE id = '{gone}'"
        ))
        .unwrap(),
        0
    );
    m.assert_log_clean();
}

#[test]
fn tls_when_the_url_asks_for_it_and_the_password_is_never_shown() {
    let pg = match PgServer::start_tls() {
        Ok(pg) => pg,
        Err(PgError::NotInstalled | PgError::NoOpenssl) => {
            eprintln!("SKIPPED: PostgreSQL or openssl is not installed");
            return;
        }
        Err(e) => panic!("cannot start PostgreSQL with TLS: {e}"),
    };
    pg.query(&format!("ALTER ROLE nex PASSWORD '{SECRET}'"))
        .unwrap();
    let tcp = pg.tcp_url().unwrap();
    let m = Machine::new(&pg, "tls-box", 41, 3);
    m.backfill();
    let refused = |url: &str, why: &str| {
        m.configure_url(Some(url));
        let out = m.sync();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("replica_unreachable"),
            "{why}: {err}"
        );
    };
    // The server takes TLS connections only: without TLS, refused.
    refused(
        &format!("{tcp} password={SECRET} sslmode=disable"),
        "a plain connection",
    );
    // `require` encrypts without checking the (self-signed) chain, as libpq does; the
    // daemon's connection shows as TLS in pg_stat_ssl.
    m.configure_url(Some(&format!("{tcp} password={SECRET} sslmode=require")));
    let mut d = m.daemon();
    wait_equal(&pg, &m);
    let tls_backends = |ssl: bool| {
        pg.scalar(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.usename = 'nex' AND a.client_addr IS NOT NULL AND s.ssl = {ssl}"
        ))
        .unwrap()
    };
    wait_for("the daemon's TLS connection", || tls_backends(true) >= 1);
    assert_eq!(tls_backends(false), 0);
    d.stop(Duration::from_secs(20));
    m.assert_log_clean();
    let state =
        std::fs::read_to_string(m.dir.path().join("home/run/replica.json")).unwrap_or_default();
    assert!(!state.contains(SECRET), "{state}");

    // verify-full against the test CA (key=value and URL forms); verify-full against the
    // system's roots refuses the test CA's certificate; verify-ca checks the chain only.
    let id = pg.ca_file().display().to_string();
    m.configure_url(Some(&format!(
        "{tcp} password={SECRET} sslmode=verify-full sslrootcert='{id}'"
    )));
    assert!(m.sync().status.success());
    let port = tcp
        .split("port=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    m.configure_url(Some(&format!(
        "postgres://nex:{SECRET}@127.0.0.1:{port}/postgres?sslmode=verify-ca&sslrootcert={id}"
    )));
    assert!(m.sync().status.success());
    refused(
        &format!("{tcp} password={SECRET} sslmode=verify-full"),
        "a certificate the system does not trust",
    );
    refused(
        &format!("{tcp} password=wrong-{SECRET} sslmode=require"),
        "a wrong password",
    );
    compare(&pg, &m.ledger(), "tls-box").unwrap();
}

#[test]
fn without_a_replica_nothing_changes_and_status_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("claude");
    std::fs::create_dir_all(&corpus).unwrap();
    let home = BenchHome::create(&dir.path().join("home"), &corpus, &bins()).unwrap();
    let out = home.nex(&["replica", "status", "--json"]).output().unwrap();
    assert!(out.status.success());
    let st: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["enabled"], false);
    let out = home.nex(&["replica", "sync"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("replica_not_configured"));
    // A bad URL is a config error that names the code, never the URL.
    let out = home
        .nex(&["replica", "status"])
        .env("NEX_REPLICA_URL", "mysql://u:hunter2-secret@h/db")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("replica_url_invalid"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let _ = Path::new("");
}

/// `ledger`'s (sessions, turns without the synthetic root turns, input tokens, total tokens
/// counted as the reports count them).
fn ledger_sums(ledger: &Path) -> (u64, u64, i64, i64) {
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let sessions: i64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    let (turns, input, total): (i64, i64, i64) = conn
        .query_row(
            "SELECT count(*), coalesce(sum(input_tokens), 0),
                    coalesce(sum(coalesce(total_tokens, coalesce(input_tokens, 0)
                        + coalesce(output_tokens, 0) + coalesce(cached_input_tokens, 0)
                        + coalesce(cache_write_tokens, 0))), 0)
             FROM turns WHERE source_event_id IS NULL OR source_event_id <> '__root__'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    (sessions as u64, turns as u64, input, total)
}

/// The session list and the usage rows of the replica hold both machines, with the ledgers'
/// counts and sums.
fn reports_cover_both_machines(a: &Machine, b: &Machine) {
    let out = a.run(&[
        "sessions",
        "list",
        "--replica",
        "--limit",
        "10000",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let out = a.run(&["sessions", "list", "--replica", "--by", "machine", "--json"]);
    let by_machine: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(by_machine.len(), 2, "{by_machine:?}");
    let usage = a.json(&["usage", "--replica", "--by", "machine", "--json"]);
    let usage = usage["rows"].as_array().unwrap();
    assert_eq!(usage.len(), 2);
    for m in [a, b] {
        let (sessions, turns, input, total) = ledger_sums(&m.ledger());
        let listed = list
            .iter()
            .filter(|s| s["machine"] == m.name.as_str())
            .count() as u64;
        assert_eq!(listed, sessions, "{}", m.name);
        let row = by_machine
            .iter()
            .find(|r| r["machine"] == m.name.as_str())
            .unwrap();
        assert_eq!(row["sessions"], sessions);
        assert_eq!(row["turns"], turns);
        let u = usage.iter().find(|r| r["key"] == m.name.as_str()).unwrap();
        assert_eq!(
            (&u["turns"], &u["input_tokens"], &u["total_tokens"]),
            (&turns.into(), &input.into(), &total.into()),
            "{}",
            m.name
        );
        let roots = u["sessions"].as_u64().unwrap();
        assert!(roots > 0 && roots <= sessions);
    }
    replica_usage_is_the_sum_of_the_local_reports(a, b);
    mcp_get_usage_reads_the_replica(a);
}

/// `nex mcp`'s `get_usage` with `replica` answers what `nex usage --replica` prints (by
/// machine, by session, and filtered), through a real MCP client over stdio; the password of
/// the replica's URL is in no answer.
fn mcp_get_usage_reads_the_replica(a: &Machine) {
    use crate::query_mcp::{client, structured};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = client(&a.dir.path().join("home"), &a.ledger(), &[]).await;
        let cases: [(&[&str], Value); 3] = [
            (
                &["--by", "machine"],
                serde_json::json!({"replica": true, "by": "machine"}),
            ),
            (
                &["--by", "session"],
                serde_json::json!({"replica": true, "by": "session", "limit": 200}),
            ),
            (
                &[
                    "--by",
                    "provider",
                    "--provider",
                    "claude-code",
                    "--since",
                    "2000-01-01",
                ],
                serde_json::json!({"replica": true, "by": "provider",
                                   "provider": "claude-code", "since": "2000-01-01"}),
            ),
        ];
        for (args, mcp_args) in cases {
            let cli = a.json(&[&["usage", "--replica", "--json"][..], args].concat());
            let got = structured(&client, "get_usage", mcp_args).await;
            assert!(!got["rows"].as_array().unwrap().is_empty(), "{args:?}");
            assert_eq!(got["rows"], cli["rows"], "{args:?}");
            assert_eq!(got["unpriced_models"], cli["unpriced_models"], "{args:?}");
            assert_eq!(got["next_cursor"], Value::Null, "{args:?}");
            assert!(!got.to_string().contains(SECRET));
        }
        // Without `replica`: this machine's ledger, as `nex usage`.
        let local = structured(&client, "get_usage", serde_json::json!({"by": "provider"})).await;
        assert_eq!(
            local["rows"],
            a.json(&["usage", "--by", "provider", "--json"])["rows"]
        );
        client.cancel().await.unwrap();
    });
}

/// `nex usage --replica` under every grouping (and with filters) equals the two machines'
/// `nex usage --json` merged: the same keys (a session as `machine/label`), token sums, root
/// session counts, costs (unknown when either side's is) and unpriced models; `--by machine`
/// splits them, each machine's row the sum of its local report.
fn replica_usage_is_the_sum_of_the_local_reports(a: &Machine, b: &Machine) {
    let cases: &[&[&str]] = &[
        &["--by", "day"],
        &["--by", "week"],
        &["--by", "month"],
        &["--by", "model"],
        &["--by", "provider"],
        &["--by", "project"],
        &["--by", "session"],
        &[
            "--by",
            "day",
            "--provider",
            "claude-code",
            "--since",
            "2020-01-01",
        ],
        &["--by", "model", "--until", "2000-01-01"],
    ];
    for args in cases {
        let session = args[1] == "session";
        let mut expected: std::collections::BTreeMap<String, Value> = Default::default();
        let mut unpriced = std::collections::BTreeSet::new();
        for m in [a, b] {
            let local = m.json(&[&["usage", "--json"], *args].concat());
            for row in local["rows"].as_array().unwrap() {
                let key = row["key"].as_str().unwrap();
                let key = if session {
                    format!("{}/{key}", m.name)
                } else {
                    key.to_owned()
                };
                merge_row(expected.entry(key).or_insert(Value::Null), row);
            }
            for model in local["unpriced_models"].as_array().unwrap() {
                unpriced.insert(model.as_str().unwrap().to_owned());
            }
        }
        let replica = a.json(&[&["usage", "--replica", "--json"], *args].concat());
        let got: std::collections::BTreeMap<String, Value> = replica["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["key"].as_str().unwrap().to_owned(), r.clone()))
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>(),
            "{args:?}"
        );
        for (key, want) in &expected {
            assert_same_usage(&got[key], want, &format!("{args:?} {key}"));
        }
        let got_unpriced: std::collections::BTreeSet<String> = replica["unpriced_models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(got_unpriced, unpriced, "{args:?}");
        if args.contains(&"--until") {
            assert!(got.is_empty(), "a window before every turn: {got:?}");
        } else {
            assert!(!got.is_empty(), "{args:?}");
        }
    }
    // By machine: each row is the sum of that machine's local rows by session (one per root).
    let replica = a.json(&["usage", "--replica", "--by", "machine", "--json"]);
    for m in [a, b] {
        let mut want = Value::Null;
        let local = m.json(&["usage", "--by", "session", "--json"]);
        for row in local["rows"].as_array().unwrap() {
            merge_row(&mut want, row);
        }
        let got = replica["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == m.name.as_str())
            .unwrap();
        assert_same_usage(got, &want, &m.name);
    }
}

const USAGE_COUNTS: [&str; 8] = [
    "sessions",
    "turns",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
];

/// Adds a usage row into `into` (`Null`: none yet); a cost is unknown when either is.
fn merge_row(into: &mut Value, row: &Value) {
    if into.is_null() {
        *into = row.clone();
        return;
    }
    for field in USAGE_COUNTS {
        into[field] = (into[field].as_i64().unwrap() + row[field].as_i64().unwrap()).into();
    }
    into["cost_usd"] = match (into["cost_usd"].as_f64(), row["cost_usd"].as_f64()) {
        (Some(x), Some(y)) => (x + y).into(),
        _ => Value::Null,
    };
}

fn assert_same_usage(got: &Value, want: &Value, what: &str) {
    for field in USAGE_COUNTS {
        assert_eq!(got[field], want[field], "{what}: {field}");
    }
    match (got["cost_usd"].as_f64(), want["cost_usd"].as_f64()) {
        (Some(x), Some(y)) => assert!((x - y).abs() < 1e-9 * y.abs().max(1.0), "{what}: cost"),
        (None, None) => {}
        other => panic!("{what}: cost {other:?}"),
    }
}

/// Item rule 15 reaches the replica as rule 13's removals do: a retract deletes the session's
/// rows in the ledger, its triggers log each delete in `change_log`, and the next sync deletes
/// them in PostgreSQL. A Claude Code resumed file imported while it held copies only (their
/// owner not written yet) is retracted by the backfill after the owner appears: the replica
/// then equals the ledger row for row and holds nothing of that session.
#[test]
fn a_retracted_session_disappears_from_the_replica() {
    let Some(pg) = server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let claude = dir.path().join("claude");
    let proj = claude.join("projects").join("-work-garden");
    std::fs::create_dir_all(&proj).unwrap();
    let chain =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/claude-code/resumed-chain");
    let owner = "aaaaaaaa-1111-4000-8000-00000000000a.jsonl";
    let resumed = "cccccccc-3333-4000-8000-00000000000c.jsonl";
    // The resumed file up to its last copy of the owner's lines (a summary and six copies).
    let text = std::fs::read_to_string(chain.join(resumed)).unwrap();
    let copies: String = text.split_inclusive('\n').take(7).collect();
    std::fs::write(proj.join(resumed), copies).unwrap();
    let home_dir = dir.path().join("home");
    std::fs::create_dir_all(&home_dir).unwrap();
    let m = Machine {
        home: BenchHome::create(&home_dir, &claude, &bins()).unwrap(),
        dir,
        name: "retracting".into(),
        seed: 0,
        appended: 0,
    };
    m.configure(Some(&pg));
    let rows_of = |table: &str| -> i64 {
        pg.scalar(&format!(
            "SELECT count(*) FROM nex.\"{table}\" WHERE machine = 'retracting' \
             AND {} LIKE '%cccccccc-3333%'",
            if table == "session_imports" {
                "source_session_id"
            } else {
                "session_label"
            }
        ))
        .unwrap()
    };

    m.backfill();
    m.synced();
    wait_equal(&pg, &m);
    for table in ["turns", "messages", "session_imports"] {
        assert!(
            rows_of(table) > 0,
            "{table}: the copies imported as C's own"
        );
    }

    std::fs::copy(chain.join(owner), proj.join(owner)).unwrap();
    let out = m.run(&["import", "backfill", "--wait", "--json"]);
    assert!(out.status.success());
    let job = String::from_utf8_lossy(&out.stdout);
    assert!(
        job.contains("\"retracted\":1"),
        "the job counts the retract: {job}"
    );
    let out = m.run(&["import", "jobs"]);
    assert!(out.status.success());
    let jobs = String::from_utf8_lossy(&out.stdout);
    // RETRACTED comes before ERROR, the last column (times hold spaces: count from the end).
    let header = jobs.lines().next().unwrap_or_default();
    assert_eq!(
        header.split_whitespace().rev().nth(1),
        Some("RETRACTED"),
        "{jobs}"
    );
    let counts: Vec<&str> = jobs
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().rev().nth(1))
        .collect();
    assert!(counts.contains(&"1") && counts.contains(&"0"), "{jobs}");
    let retracted: i64 = rusqlite::Connection::open_with_flags(
        m.ledger(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
    .query_row(
        "SELECT count(*) FROM sessions WHERE origin_session_id LIKE 'cccccccc-3333%'",
        [],
        |r| r.get(0),
    )
    .unwrap();
    assert_eq!(retracted, 0, "the ledger retracted C");
    m.synced();
    let rows = wait_equal(&pg, &m);
    assert!(rows > 0);
    for table in ["turns", "messages", "tool_calls", "session_imports"] {
        assert_eq!(rows_of(table), 0, "{table}: C's rows left the replica");
    }
    let sessions = pg
        .scalar(
            "SELECT count(*) FROM nex.sessions WHERE machine = 'retracting' \
             AND origin_session_id LIKE 'cccccccc-3333%'",
        )
        .unwrap();
    assert_eq!(sessions, 0);
}
