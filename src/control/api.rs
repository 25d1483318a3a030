//! The control API: the requests `nex` sends to a control plane and its answers. The same
//! types travel as JSON lines over the control socket and are handled directly by an
//! in-process supervisor, so the CLI has one code path for both.
//!
//! Wire form: one request per line, `{"cmd":"status"}`, `{"cmd":"backfill","full":true}`,
//! `{"cmd":"stop","target":"tail"}`; one response per line,
//! `{"ok":true,"result":…}` or `{"ok":false,"error":{"code":"…","message":"…"}}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::ControlError;
use super::health::{JobView, StatusReport, TailStatus};
use super::jobs::{Enqueued, JobRecord};
use crate::protocol::Code;

/// A request to a control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Liveness of the daemon.
    Ping,
    /// [`StatusReport`].
    Status,
    /// The newest jobs, `Vec<JobRecord>`.
    Jobs {
        #[serde(default = "default_limit")]
        limit: u32,
    },
    /// One job with its live run, [`JobView`]; `id` may be a unique prefix.
    Job { id: String },
    /// Enqueue a backfill ([`Enqueued`]); an active job is returned instead of a second one.
    Backfill {
        #[serde(default)]
        full: bool,
    },
    /// Start the tail ([`TailStatus`]); a running tail is left alone. `once`: one run, not
    /// restarted when it ends (the in-process `nex import tail --once`).
    Tail {
        #[serde(default)]
        once: bool,
    },
    /// Stop the tail (`target` absent or `"tail"`) or cancel a job (`target` = job id).
    Stop {
        #[serde(default)]
        target: Option<String>,
    },
    /// Restart the tail, clearing its restart count and `error` state ([`TailStatus`]).
    Restart,
    /// Socket only: answer `{"ok":true,"result":{"watching":true}}`, then stream every bus
    /// event as one JSON line (`{"type":"import.run.started",…}`) until the client closes.
    Watch,
    /// Socket only: stop the daemon gracefully, as SIGTERM does. Answers [`Stopping`] (the
    /// daemon's pid, to wait for) before the shutdown starts; the daemon then closes every
    /// connection, stops its runs within `shutdown_grace` and exits 0.
    Shutdown,
}

fn default_limit() -> u32 {
    20
}

/// What `stop` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stopped", rename_all = "snake_case")]
pub enum Stopped {
    Tail { tail: TailStatus },
    Job { job: JobRecord },
}

/// `shutdown`'s answer: the daemon that is stopping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stopping {
    pub pid: u32,
}

/// `ping`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pong {
    pub pid: u32,
    pub version: String,
}

/// An error on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Response {
    pub fn from_result<T: Serialize>(r: Result<T, ControlError>) -> Response {
        match r.and_then(|v| {
            serde_json::to_value(v).map_err(|e| ControlError::BadRequest(e.to_string()))
        }) {
            Ok(v) => Response {
                ok: true,
                result: Some(v),
                error: None,
            },
            Err(e) => Response::error(&e),
        }
    }

    pub fn error(e: &ControlError) -> Response {
        Response {
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code: e.code().as_str().to_owned(),
                message: e.to_string(),
            }),
        }
    }

    /// The typed result.
    ///
    /// Errors: the response's own error as `ControlError::Remote`; `bad_request` when the
    /// result does not have the expected shape.
    pub fn into_result<T: serde::de::DeserializeOwned>(self) -> Result<T, ControlError> {
        if !self.ok {
            let e = self.error.unwrap_or(ErrorBody {
                code: Code::Unknown.as_str().into(),
                message: "error without body".into(),
            });
            return Err(ControlError::Remote {
                code: e.code,
                message: e.message,
            });
        }
        serde_json::from_value(self.result.unwrap_or(Value::Null))
            .map_err(|e| ControlError::BadRequest(format!("unexpected result shape: {e}")))
    }
}

/// Typed views used by the CLI; re-exported for callers of [`Request`].
pub type JobAnswer = JobView;
pub type BackfillAnswer = Enqueued;
pub type StatusAnswer = StatusReport;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_a_stable_wire_form() {
        let r: Request = serde_json::from_str(r#"{"cmd":"backfill"}"#).unwrap();
        assert_eq!(r, Request::Backfill { full: false });
        let r: Request = serde_json::from_str(r#"{"cmd":"stop","target":"tail"}"#).unwrap();
        assert_eq!(
            r,
            Request::Stop {
                target: Some("tail".into())
            }
        );
        assert_eq!(
            serde_json::to_string(&Request::Jobs { limit: 5 }).unwrap(),
            r#"{"cmd":"jobs","limit":5}"#
        );
        assert!(serde_json::from_str::<Request>(r#"{"cmd":"drop_tables"}"#).is_err());
        let r: Request = serde_json::from_str(r#"{"cmd":"shutdown"}"#).unwrap();
        assert_eq!(r, Request::Shutdown);
    }
}
