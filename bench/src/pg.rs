//! A private PostgreSQL server for the replica's tests and benchmark: `initdb` into a temp dir,
//! started on a Unix socket in that dir (no TCP port), trust authentication for the user `nex`,
//! stopped (immediately) when dropped. Debian's `postgresql` package provides the binaries
//! (`/usr/lib/postgresql/<v>/bin`, or `NEX_PG_BINDIR`).
//!
//! PostgreSQL refuses to run as root: as root, the server runs as the `postgres` system user
//! (else `nobody`) through `runuser`, in a directory handed over to that user. Clients (nex,
//! the tests) connect as any local user: the socket is the only way in and trusts its users.
//!
//! [`Replica::rows`] and [`ledger_rows`] read both sides as text, for row-for-row comparisons.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

/// A running private server.
pub struct PgServer {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    /// `Some(user)` when commands run as another user (we are root).
    run_as: Option<String>,
    /// The loopback port of a server started by [`PgServer::start_tls`].
    tls_port: Option<u16>,
}

/// Why the server cannot be had here.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("PostgreSQL binaries not found (install Debian's postgresql, or set NEX_PG_BINDIR)")]
    NotInstalled,
    #[error("{what} failed: {detail}")]
    Command { what: String, detail: String },
    #[error("openssl not found (needed to make the TLS test's certificates)")]
    NoOpenssl,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl PgServer {
    /// Starts a fresh server.
    ///
    /// # Errors
    /// [`PgError::NotInstalled`] when no binaries are found (callers skip), else the failing
    /// step with its output.
    pub fn start() -> Result<PgServer, PgError> {
        let server = PgServer::init()?;
        server.start_again()?;
        Ok(server)
    }

    /// Starts a fresh server that also listens on a loopback TCP port with TLS on (a
    /// certificate for `localhost` and `127.0.0.1` signed by a CA made here, see
    /// [`PgServer::ca_file`]), where only TLS connections with a password are accepted
    /// (`hostssl … scram-sha-256`, no `host` line); the socket stays open to the harness
    /// (trust).
    ///
    /// # Errors
    /// As [`PgServer::start`]; [`PgError::NoOpenssl`] when `openssl` is missing (callers skip).
    pub fn start_tls() -> Result<PgServer, PgError> {
        if Command::new("openssl").arg("version").output().is_err() {
            return Err(PgError::NoOpenssl);
        }
        let mut server = PgServer::init()?;
        let tls = server.dir.path().join("tls");
        std::fs::create_dir_all(&tls)?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &tls,
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.crt",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=nex-test-ca",
                ],
            ]
            .concat(),
        )?;
        openssl(
            &tls,
            &[
                &["req"],
                &ec[..],
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            ]
            .concat(),
        )?;
        std::fs::write(
            tls.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )?;
        openssl(
            &tls,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "san.ext",
            ],
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            tls.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )?;
        if let Some(user) = &server.run_as {
            let u = nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .ok_or(PgError::NotInstalled)?;
            for f in ["server.key", "server.crt"] {
                nix::unistd::chown(&tls.join(f), Some(u.uid), Some(u.gid))
                    .map_err(std::io::Error::from)?;
            }
        }
        std::fs::write(
            server.data_dir().join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             hostssl all all ::1/128 scram-sha-256\n",
        )?;
        server.tls_port = Some(
            std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
        );
        server.start_again()?;
        Ok(server)
    }

    /// The CA that signed a [`PgServer::start_tls`] server's certificate (PEM).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("tls").join("ca.crt")
    }

    /// A [`PgServer::start_tls`] server's TCP address as a key=value URL without TLS options
    /// or password (`host=localhost port=… user=nex dbname=postgres`).
    pub fn tcp_url(&self) -> Option<String> {
        self.tls_port
            .map(|port| format!("host=localhost port={port} user=nex dbname=postgres"))
    }

    fn init() -> Result<PgServer, PgError> {
        let bindir = find_bindir().ok_or(PgError::NotInstalled)?;
        let run_as = if nix::unistd::geteuid().is_root() {
            Some(
                ["postgres", "nobody"]
                    .iter()
                    .find(|u| nix::unistd::User::from_name(u).ok().flatten().is_some())
                    .ok_or(PgError::Command {
                        what: "choosing a non-root user".into(),
                        detail: "neither `postgres` nor `nobody` exists".into(),
                    })?
                    .to_string(),
            )
        } else {
            None
        };
        let dir = tempfile::Builder::new().prefix("nex-pg-").tempdir()?;
        let server = PgServer {
            dir,
            bindir,
            run_as,
            tls_port: None,
        };
        if let Some(user) = &server.run_as {
            let u = nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .ok_or(PgError::NotInstalled)?;
            nix::unistd::chown(server.dir.path(), Some(u.uid), Some(u.gid))
                .map_err(std::io::Error::from)?;
        }
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "nex",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        Ok(server)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The directory of the server's socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL nex is given (`postgres://nex@localhost/postgres?host=<socket dir>`).
    pub fn url(&self) -> String {
        let mut url = format!(
            "host={} user=nex dbname=postgres",
            self.socket_dir().display()
        );
        // The socket's name carries the port.
        if let Some(port) = self.tls_port {
            url.push_str(&format!(" port={port}"));
        }
        url
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    ///
    /// # Errors
    /// `pg_ctl start` failed (its log is in the message).
    pub fn start_again(&self) -> Result<(), PgError> {
        let data = self.data_dir();
        let log = self.dir.path().join("server.log");
        let mut opts = format!(
            "-k {} -c listen_addresses='' -F -c max_connections=60",
            self.socket_dir().display()
        );
        if let Some(port) = self.tls_port {
            let tls = self.dir.path().join("tls");
            opts = format!(
                "-k {} -c listen_addresses=127.0.0.1 -p {port} -F -c max_connections=60 \
                 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.socket_dir().display(),
                tls.join("server.crt").display(),
                tls.join("server.key").display()
            );
        }
        let r = self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data),
                "-l",
                path_str(&log),
                "-w",
                "-t",
                "60",
                "-o",
                &opts,
                "start",
            ],
        );
        if let Err(e) = r {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(PgError::Command {
                what: "pg_ctl start".into(),
                detail: format!("{e}\n{log}"),
            });
        }
        Ok(())
    }

    /// Stops the server (fast: open connections are ended) and waits until it is down.
    ///
    /// # Errors
    /// `pg_ctl stop` failed.
    pub fn stop(&self) -> Result<(), PgError> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "fast", "-w", "stop"],
        )
        .map(drop)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<Output, PgError> {
        let exe = self.bindir.join(program);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        // The server must not inherit our cwd if the user cannot enter it.
        cmd.args(args).current_dir(self.dir.path());
        let out = cmd.output()?;
        if !out.status.success() {
            return Err(PgError::Command {
                what: program.into(),
                detail: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(out)
    }

    /// Runs `sql` (one or more statements) and returns the rows of the last one, every value
    /// as text (`None`: NULL).
    ///
    /// # Errors
    /// The connection or the statement failed (message of the server).
    pub fn query(&self, sql: &str) -> Result<TextRows, String> {
        let url = self.url();
        let sql = sql.to_owned();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let msgs = client
                .simple_query(&sql)
                .await
                .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))?;
            let mut rows = Vec::new();
            for m in msgs {
                match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => {
                        rows.push((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect())
                    }
                    tokio_postgres::SimpleQueryMessage::CommandComplete(_) => {}
                    _ => {}
                }
            }
            Ok(rows)
        })
    }

    /// One value of `sql` as an integer (0 when NULL or no row).
    ///
    /// # Errors
    /// As [`PgServer::query`].
    pub fn scalar(&self, sql: &str) -> Result<i64, String> {
        let rows = self.query(sql)?;
        Ok(rows
            .first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Every row of replicated table `table` of `machine` in the replica, with `columns`
    /// (text; `machine` excluded), sorted.
    ///
    /// # Errors
    /// As [`PgServer::query`].
    pub fn rows(&self, table: &str, machine: &str, columns: &[String]) -> Result<TextRows, String> {
        let cols: Vec<String> = columns.iter().map(|c| format!("\"{c}\"::text")).collect();
        let mut rows = self.query(&format!(
            "SELECT {} FROM nex.\"{table}\" WHERE machine = '{}'",
            cols.join(", "),
            machine.replace('\'', "''")
        ))?;
        rows.sort();
        Ok(rows)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run(
            "pg_ctl",
            &["-D", path_str(&data), "-m", "immediate", "-w", "stop"],
        );
    }
}

/// Runs `openssl ARGS` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> Result<(), PgError> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()?;
    if !out.status.success() {
        return Err(PgError::Command {
            what: format!("openssl {}", args.first().unwrap_or(&"")),
            detail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

/// `NEX_PG_BINDIR`, else the newest `/usr/lib/postgresql/<v>/bin`, else `initdb`'s directory
/// on `PATH`.
fn find_bindir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("NEX_PG_BINDIR").map(PathBuf::from) {
        return d.join("initdb").exists().then_some(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p).find(|d| d.join("initdb").exists() && d.join("pg_ctl").exists())
    })
}

/// Rows as text (`None`: NULL).
pub type TextRows = Vec<Vec<Option<String>>>;

/// A table's name, its columns and its rows.
pub type TableRows = (String, Vec<String>, TextRows);

/// The replicated tables (as `nex::replica::tables`) with the ledger's columns, and every row
/// of each in `ledger` as text, sorted.
///
/// # Errors
/// The ledger cannot be read.
pub fn ledger_rows(ledger: &Path) -> rusqlite::Result<Vec<TableRows>> {
    let conn = Connection::open_with_flags(ledger, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    nex::ledger::text::register(&conn)?;
    let shapes = nex::replica::tables::shapes(&conn).map_err(|e| {
        rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(e.to_string())))
    })?;
    let mut out = Vec::new();
    for shape in shapes {
        let cols: Vec<String> = shape.columns.iter().map(|c| c.name.clone()).collect();
        // A compressed body is compared as its text (the replica holds text).
        let list: Vec<String> = cols
            .iter()
            .map(|c| {
                let packed = nex::ledger::text::PACKED_COLUMNS.contains(&(shape.table.name, c));
                if packed {
                    format!("nex_text(\"{c}\")")
                } else {
                    format!("\"{c}\"")
                }
            })
            .collect();
        let mut stmt = conn.prepare(&format!(
            "SELECT {} FROM \"{}\"",
            list.join(", "),
            shape.table.name
        ))?;
        let width = cols.len();
        let mut rows: Vec<Vec<Option<String>>> = stmt
            .query_map([], |r| {
                (0..width)
                    .map(|i| {
                        Ok(match r.get::<_, Value>(i)? {
                            Value::Null => None,
                            Value::Integer(n) => Some(n.to_string()),
                            Value::Real(f) => Some(f.to_string()),
                            Value::Text(s) => Some(s),
                            Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                        })
                    })
                    .collect()
            })?
            .collect::<Result<_, _>>()?;
        rows.sort();
        out.push((shape.table.name.to_owned(), cols, rows));
    }
    Ok(out)
}

/// `Ok(total rows)` when the replica's rows of `machine` equal the ledger's, table by table
/// and row for row; else the first difference.
///
/// # Errors
/// The first table that differs (counts and the first differing row), or a read failure.
pub fn compare(pg: &PgServer, ledger: &Path, machine: &str) -> Result<u64, String> {
    let tables = ledger_rows(ledger).map_err(|e| e.to_string())?;
    let mut total = 0u64;
    for (table, cols, rows) in tables {
        let replica = pg.rows(&table, machine, &cols)?;
        if replica != rows {
            let first = rows
                .iter()
                .zip(&replica)
                .find(|(a, b)| a != b)
                // The keys and the first differing column only: rows hold whole messages.
                .map(|(a, b)| {
                    let col = a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0);
                    format!(
                        "first difference at key {:?}, column {}",
                        a.first(),
                        cols.get(col).map_or("?", String::as_str)
                    )
                })
                .unwrap_or_default();
            return Err(format!(
                "{machine}: {table}: ledger {} rows, replica {} rows; {first}",
                rows.len(),
                replica.len()
            ));
        }
        total += rows.len() as u64;
    }
    Ok(total)
}
