//! The wire vocabulary shared by `nex` and `aix`: import items, service-level requests and
//! responses (IMPORT_SEMANTICS.md), stdio JSONL v1 frames (PROTOCOL.md), job states and the error
//! codes.
//!
//! Layout:
//! - `items`: `ImportSessionItem` and its session, turns, messages, tool calls.
//! - `requests`: import and chunk requests and responses, cursors.
//! - `frames`: the envelope, typed frames of both directions, encode/decode.
//! - `codes`: [`Code`], the one set of error codes (transport, pipeline, import service,
//!   worker, control plane, commands).
//! - `jobs`: the states of a backfill job.
//! - `tool_json`: a tool call's JSON, carried as the text that crossed the pipe when canonical.
//! - `alias`: folding of the baseline's snake_case aliases into the camelCase fields.

mod alias;
pub mod codes;
pub mod frames;
pub mod items;
pub mod jobs;
pub mod requests;
pub mod tool_json;

pub use codes::Code;
pub use frames::{
    ControlFrame, Envelope, FileError, FrameError, HealthStatus, MAX_FILE_ERRORS, RunError,
    RunMode, RunProgress, RunStart, RunStop, StoreFigures, WorkerFrame, decode_control_frame,
    decode_worker_frame, encode_frame,
};
pub use items::{ImportSessionItem, Message, SessionInfo, ToolCall, Turn};
pub use jobs::JobStatus;
pub use requests::{
    ChunkRequest, ChunkResponse, ChunkStatus, Cursor, ENCODING_GZIP_BASE64, ImportRequest,
    ImportResponse, ItemResult, ItemStatus, SOURCE_AIX,
};
pub use tool_json::ToolJson;
