//! The control socket: `$NEX_HOME/run/nex.sock`, mode 0600 in a 0700 directory, one JSON
//! request per line and one JSON response per line (see `api`). Local user only; there is no
//! TCP listener anywhere (seed: locality trust, no token).

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use futures::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;
use tokio_util::codec::{Framed, LinesCodec};
use tokio_util::sync::CancellationToken;

use super::api::{Request, Response, Stopping};
use super::error::ControlError;
use super::supervisor::ControlHandle;
use crate::pipeline::Bus;

/// Longest request line accepted; requests are tiny.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Creates `dir` (and missing parents) with mode 0700. An existing directory keeps its mode
/// (a user may point `NEX_HOME` anywhere), with a warning when others can enter or read it:
/// it holds every agent's conversations.
///
/// Errors: `io_failed`.
pub fn create_private_dir(dir: &Path) -> Result<(), ControlError> {
    match std::fs::metadata(dir) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    path = %dir.display(),
                    mode = format!("{mode:04o}"),
                    "NEX_HOME is open to other users; `chmod 700` it to keep the ledger private"
                );
            }
            Ok(())
        }
        Err(_) => ensure_private_dir(dir),
    }
}

/// Creates `dir` (and parents) and makes it 0700. Only for directories nex owns outright
/// (`$NEX_HOME/run`), never for `NEX_HOME` itself, which a user may point anywhere.
///
/// Errors: `io_failed`.
pub fn ensure_private_dir(dir: &Path) -> Result<(), ControlError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(ControlError::io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(ControlError::io(dir))
}

/// A bound control socket.
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    /// Cancelled by a `shutdown` request (after its answer is sent); `None`: `shutdown` is
    /// refused (a server without a daemon to stop).
    on_shutdown: Option<CancellationToken>,
}

impl ControlServer {
    /// Binds `socket` (its directory made 0700, the socket 0600). A stale socket file left by a
    /// dead daemon is replaced.
    ///
    /// Errors: `daemon_already_running` when a daemon answers on it; `socket_failed`.
    pub async fn bind(socket: &Path) -> Result<ControlServer, ControlError> {
        let dir = socket
            .parent()
            .ok_or_else(|| ControlError::BadRequest("socket path has no directory".into()))?;
        ensure_private_dir(dir)?;
        if socket.exists() {
            if UnixStream::connect(socket).await.is_ok() {
                return Err(ControlError::DaemonRunning(socket.to_path_buf()));
            }
            std::fs::remove_file(socket).map_err(|source| ControlError::Socket {
                path: socket.to_path_buf(),
                source,
            })?;
        }
        let sock_err = |source| ControlError::Socket {
            path: socket.to_path_buf(),
            source,
        };
        let listener = UnixListener::bind(socket).map_err(sock_err)?;
        // The directory is 0700, so nobody else can reach the socket between bind and chmod.
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
            .map_err(sock_err)?;
        Ok(ControlServer {
            listener,
            path: socket.to_path_buf(),
            on_shutdown: None,
        })
    }

    /// Serves `shutdown` requests: each is answered with this process's pid, then `token` is
    /// cancelled (the daemon's graceful stop).
    pub fn with_shutdown(mut self, token: CancellationToken) -> ControlServer {
        self.on_shutdown = Some(token);
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves connections until `shutdown`, then closes them and removes the socket file.
    /// `bus` feeds `watch` requests (refused when `None`).
    pub async fn serve(self, handle: ControlHandle, bus: Option<Bus>, shutdown: CancellationToken) {
        let mut conns = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        conns.spawn(serve_conn(
                            stream,
                            handle.clone(),
                            bus.clone(),
                            shutdown.clone(),
                            self.on_shutdown.clone(),
                        ));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        conns.abort_all();
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn serve_conn(
    stream: UnixStream,
    handle: ControlHandle,
    bus: Option<Bus>,
    shutdown: CancellationToken,
    on_shutdown: Option<CancellationToken>,
) {
    let mut framed = Framed::new(stream, LinesCodec::new_with_max_length(MAX_REQUEST_BYTES));
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return,
            line = framed.next() => line,
        };
        let response = match line {
            None => return,
            Some(Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded)) => {
                Response::error(&ControlError::BadRequest("request too long".into()))
            }
            Some(Err(_)) => return,
            Some(Ok(line)) if line.trim().is_empty() => continue,
            Some(Ok(line)) => match serde_json::from_str::<Request>(&line) {
                Ok(Request::Watch) if bus.is_some() => {
                    let events = bus.as_ref().map(Bus::subscribe);
                    if let Some(events) = events {
                        watch(&mut framed, events, &shutdown).await;
                    }
                    return;
                }
                Ok(Request::Shutdown) if on_shutdown.is_some() => {
                    let answer = Response::from_result(Ok(Stopping {
                        pid: std::process::id(),
                    }));
                    let text = serde_json::to_string(&answer).expect("response serialises");
                    // The answer goes out before the stop begins (which closes connections).
                    let _ = framed.send(text).await;
                    tracing::info!("shutdown requested over the control socket");
                    if let Some(token) = &on_shutdown {
                        token.cancel();
                    }
                    return;
                }
                Ok(request) => handle.request(request).await,
                Err(e) => Response::error(&ControlError::BadRequest(format!(
                    "not a control request ({})",
                    match e.classify() {
                        serde_json::error::Category::Data => "unknown command or field",
                        _ => "invalid JSON",
                    }
                ))),
            },
        };
        // Plain data: serialisation cannot fail.
        let text = serde_json::to_string(&response).expect("response serialises");
        if framed.send(text).await.is_err() {
            return;
        }
    }
}

/// Streams bus events to a watching client until it closes or the daemon stops. A client too
/// slow for the bus gets `{"type":"watch.lagged","missed":N}` and continues.
async fn watch(
    framed: &mut Framed<UnixStream, LinesCodec>,
    mut events: tokio::sync::broadcast::Receiver<crate::pipeline::ImportEvent>,
    shutdown: &CancellationToken,
) {
    use tokio::sync::broadcast::error::RecvError;
    let ack = Response {
        ok: true,
        result: Some(serde_json::json!({ "watching": true })),
        error: None,
    };
    let text = serde_json::to_string(&ack).expect("response serialises");
    if framed.send(text).await.is_err() {
        return;
    }
    loop {
        let line = tokio::select! {
            _ = shutdown.cancelled() => return,
            // The client closing its side ends the watch.
            next = framed.next() => match next {
                None | Some(Err(_)) => return,
                Some(Ok(_)) => continue,
            },
            event = events.recv() => match event {
                Ok(e) => serde_json::to_string(&e).expect("event serialises"),
                Err(RecvError::Lagged(n)) => {
                    serde_json::json!({ "type": "watch.lagged", "missed": n }).to_string()
                }
                Err(RecvError::Closed) => return,
            },
        };
        if framed.send(line).await.is_err() {
            return;
        }
    }
}
