//! The client side of the control socket, and [`Control`]: one interface over a running
//! daemon or an in-process supervisor, so each CLI command has one code path.

use std::path::{Path, PathBuf};

use futures::{SinkExt, StreamExt};
use tokio::net::UnixStream;
use tokio_util::codec::{Framed, LinesCodec};

use super::api::{Request, Response};
use super::error::ControlError;
use super::supervisor::ControlHandle;

/// Longest response line accepted (a status with many jobs stays far below).
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// A connection to a daemon's control socket.
#[derive(Debug)]
pub struct ControlClient {
    framed: Framed<UnixStream, LinesCodec>,
    path: PathBuf,
}

impl ControlClient {
    /// Connects to `socket`; `Ok(None)` when no daemon listens there (no file, or a stale file
    /// nobody accepts on).
    ///
    /// Errors: `socket_failed` for other I/O errors (e.g. permission denied).
    pub async fn connect(socket: &Path) -> Result<Option<ControlClient>, ControlError> {
        match UnixStream::connect(socket).await {
            Ok(stream) => Ok(Some(ControlClient {
                framed: Framed::new(stream, LinesCodec::new_with_max_length(MAX_RESPONSE_BYTES)),
                path: socket.to_path_buf(),
            })),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(source) => Err(ControlError::Socket {
                path: socket.to_path_buf(),
                source,
            }),
        }
    }

    /// Sends one request and reads its response.
    ///
    /// Errors: `socket_failed` when the daemon goes away mid-request.
    pub async fn request(&mut self, request: &Request) -> Result<Response, ControlError> {
        let text = serde_json::to_string(request).expect("request serialises");
        let gone = |path: &Path| ControlError::Socket {
            path: path.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
        };
        self.framed.send(text).await.map_err(|_| gone(&self.path))?;
        let line = self
            .framed
            .next()
            .await
            .ok_or_else(|| gone(&self.path))?
            .map_err(|_| gone(&self.path))?;
        serde_json::from_str(&line)
            .map_err(|_| ControlError::BadRequest("the daemon's response is not JSON".into()))
    }
}

impl ControlClient {
    /// After a `watch` request: the next event line, `None` when the daemon closed the stream.
    pub async fn next_line(&mut self) -> Option<String> {
        match self.framed.next().await {
            Some(Ok(line)) => Some(line),
            _ => None,
        }
    }
}

/// A control plane to talk to: a daemon over its socket, or a supervisor in this process.
#[derive(Debug)]
pub enum Control {
    Daemon(ControlClient),
    Local(ControlHandle),
}

impl Control {
    /// Sends `request` and decodes the typed result.
    ///
    /// Errors: the control plane's error (`ControlError::Remote` keeps its code) or transport.
    pub async fn call<T: serde::de::DeserializeOwned>(
        &mut self,
        request: Request,
    ) -> Result<T, ControlError> {
        let response = match self {
            Control::Daemon(c) => c.request(&request).await?,
            Control::Local(h) => h.request(request).await,
        };
        response.into_result()
    }

    pub fn is_daemon(&self) -> bool {
        matches!(self, Control::Daemon(_))
    }
}
