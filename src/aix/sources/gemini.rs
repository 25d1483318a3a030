//! Gemini CLI sessions (`<tmp>/<project>/chats/`): the current append-only JSONL upsert log
//! and the legacy whole-file JSON document, read with the CLI's own semantics
//! (google-gemini/gemini-cli `packages/core/src/services/chatRecordingService.ts`,
//! `chatRecordingTypes.ts`).
//!
//! # Files
//! - `session-<ts>-<id8>.jsonl`: a log. Its first line is the metadata record (`sessionId`,
//!   `projectHash`, `startTime`, `lastUpdated`, `kind`, …); then message records, `{"$set":
//!   {…}}` metadata patches and `{"$rewindTo": id}` rewinds, one per line.
//! - `session-<ts>-<id8>.json`: a legacy document, one `ConversationRecord` (metadata plus
//!   `messages[]`), rewritten whole in place. Fed whole by the file state's whole-file mode
//!   ([`is_document`]); the parser reads the bytes fed so far as one JSON document each time
//!   more arrive (a document that does not parse is one malformed line and gives no item).
//! - `<parentId>/<id>.jsonl` (or `.json`, a document): a subagent's chat (`kind: "subagent"`);
//!   `<id>` may be a short string rather than a UUID.
//! - Code Assist (`a2a-server`) logs: the same shape, written without `toolCalls` even where
//!   the agent used tools (its tool work is imported as what is there: its messages).
//!
//! # Mapping
//! - **Session**: `sessionId` (the first one seen); Code Assist's logs all carry the same
//!   `a2a-server`, so each of them is the session `a2a-server/<project>/<file stem>` (mapping
//!   5 named it `a2a-server/<file stem>`, which two projects' chats begun in the same minute
//!   shared; the first whole read under 6 retracts that name). Of several
//!   `session-<time>-<id8>` files of one directory carrying one `sessionId` (2025 builds wrote
//!   a subagent's chat, and the conversation after `/clear`, to a new file under the same id),
//!   the first by name (its creation minute) is the session `sessionId`, each later one the
//!   session `sessionId/<file stem>`: one file, one conversation, named from the file names. `createdAtMs` = the earliest `startTime` (Code Assist writes the metadata record again
//!   each time it resumes a chat), else the
//!   earliest message time; `updatedAtMs` = the later of `lastUpdated` and the latest message
//!   time; `model` = that of the latest message naming one (by first appearance: rewriting an
//!   older message does not move it back); `provider` = `google`; `project` = the
//!   `<project>` directory (a project hash or slug); `workspacePath` = the project's working
//!   directory from the CLI's registry when discovery found one (`SourceFile::workspace`:
//!   `<project>/.project_root`, else `projects.json`), folded into the item's fingerprint;
//!   `metadata` = `{projectHash, kind, summary, directories}`
//!   where present.
//! - **Upserts**: a message record whose `id` was seen before replaces that message (tool
//!   results and tokens arrive this way), so every row carries the last version and tokens
//!   count once. A `$set` patches the session; a `$set.messages` (and a metadata record's
//!   `messages`) replaces the live history with that array, each element upserted in order.
//! - **Turns**: a `user` message with text opens a turn named by its id; every other message
//!   joins the turn of the last message of the live history when it is first seen (a message
//!   with no such turn, e.g. an `info` notice before the first prompt, opens a turn that the
//!   next prompt joins: what comes before a prompt is its turn, named by its first message;
//!   before mapping 6 the notice's turn had no prompt and the prompt opened one more). A
//!   message keeps that turn for good. `parentSourceTurnId` = the live history's head turn when the
//!   turn opened. `startedAtMs` = its first message's time, `completedAtMs` = the latest time
//!   of its messages and tool calls. Tokens: the sum over the turn's gemini messages (`input`
//!   minus `cached` -> `inputTokens`, since Gemini's input count includes the cache reads,
//!   clamped at 0; `output`, `cached` -> `cachedInputTokens`, `thoughts` -> `reasoningTokens`,
//!   `total`; `tool` is only in `total`). `model` and `responseMessageSourceId`: the turn's last gemini message with
//!   one / with text; `queryMessageSourceIds` = the prompt.
//! - **Rewinds**: `$rewindTo` cuts the live history before its target, the target included
//!   (the CLI's `rewindTo`: "all messages from (and including) the specified ID onwards are
//!   removed"; a target not in the history clears it, as the CLI's loader does). The ledger
//!   never deletes rows: rewound messages and their turns stay as an abandoned branch, and the
//!   next prompt opens a turn whose parent is the turn before the target, as a Claude Code
//!   rewind branches.
//! - **Messages**: `user` -> `user`; `gemini` -> `assistant` (`thinking` = `thoughts`
//!   subjects and descriptions, one per line); `info`/`warning`/`error` -> `system`; a `user`
//!   message made only of `functionResponse` parts -> `tool`. `content` = the text parts
//!   concatenated as the CLI renders them; `sequence` = order of first appearance;
//!   `metadataJson` = `{type, model, displayContent}` where present. Other types are skipped
//!   and counted (`message/<type>`), as are unknown record shapes (`unknown`).
//! - **Tool calls**: `toolCalls[]` of gemini messages: `id` (else `<messageId>#<index>`),
//!   `name`, `paramsJson` = `args`, `resultJson` = `result`, status `success` -> completed,
//!   `error`/`cancelled` -> failed (`error` = that status), `executing` -> running, others
//!   pending; `startedAtMs` = its message's time, `completedAtMs` (once done) = the call's
//!   `timestamp`. A call's `agentId` names the subagent session it ran:
//!   `spawnedSourceSessionId`, and [`SessionParser::spawn_links`] keyed by it.
//! - **Subagents**: a `<parentId>/<id>.jsonl` log (or any log with `kind: "subagent"`) is a
//!   subagent session: `isSubagent`, `parentSourceSessionId` = `<parentId>`. Its spawn tool
//!   call comes from the parent's `toolCalls[].agentId`, matched on the child file's stem
//!   (the CLI names a subagent's log after its session id).
//!
//! # Incremental reading
//! The parser keeps the whole conversation in memory (see `conversation`): a rewrite may touch
//! any earlier turn (a rewrite that changes nothing touches nothing). Items hold the header,
//! the row of every turn touched since the last take with its running aggregates (tokens,
//! times, model, response message), and the turn the ledger will take as the session's head,
//! so the last item sets the same head as a full import; of those turns' messages and tool
//! calls, only the ones new or changed since the last take (SOURCES.md "Tail": a turn sent
//! without some of its tool calls carries `toolCallCount`, item rule 14), so an append to a
//! long open turn sends what the appended lines wrote, not the turn. When the header's model or
//! creation time changes, the turns whose rows take those from the header (no model of their
//! own, a message without a time) are re-sent whole. A legacy document is parsed afresh on
//! every change, so all of it is new each time: its turns go out whole.
//! With `emit = false` lines rebuild the full state, so `open_turn_offset` is the bytes
//! consumed: a worker resuming from a cursor rebuilds `[0, offset)` silently (O(file) once)
//! and emits only what follows, and the result is the same as a full import of the final log.
//! An append costs the parse of its lines, the rows it wrote, and one pass over the touched
//! turns' messages in memory for their aggregates.
//!
//! Layout: `record` (one record read leniently), `conversation` (the upsert-log state: history,
//! turns, what changed), `rows` (ledger rows of a turn, spawn links).

mod conversation;
mod record;
mod rows;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use self::conversation::Conversation;
use self::record::Record;
use super::common::{FingerprintChain, LineCursor};
use super::{FileRole, ParseStats, Provider, SessionParser, SourceFile, SpawnLink};
use crate::protocol::{ImportSessionItem, SessionInfo};

/// `session.provider` of every Gemini CLI item.
pub const MODEL_PROVIDER: &str = "google";

/// The `sessionId` that Code Assist (the CLI's `a2a-server`, run by the IDE extensions and
/// Cloud Shell) writes into every one of its logs: each such file is a session of its own,
/// named `a2a-server/<project>/<file stem>` (see [`GeminiParser::source_session_id`]).
pub const CODE_ASSIST_SESSION_ID: &str = "a2a-server";

/// Whether `file` is read whole on every change (a legacy `.json` document rewritten in
/// place) rather than as an append-only line log.
pub fn is_document(file: &SourceFile) -> bool {
    file.provider == Provider::GeminiCli && file.path.extension().is_some_and(|e| e == "json")
}

/// What the file's place in the tree says about its session.
#[derive(Debug, Default)]
struct Layout {
    subagent: bool,
    parent: Option<String>,
    project: Option<String>,
    /// The project's working directory from the CLI's registry (`SourceFile::workspace`).
    workspace: Option<String>,
    /// The file's name without `session-` and the extension (`2026-05-27T11-44-a2a-serv`).
    stem: String,
    /// Another `session-<time>-<id8>` chat of the same directory, with the same `<id8>`, has a
    /// name that sorts before this one's: this file is not the first of its session id.
    earlier_sibling: bool,
}

impl Layout {
    fn of(file: &SourceFile) -> Self {
        let (subagent, parent) = match &file.role {
            FileRole::Subagent {
                parent_session_id, ..
            } => (true, parent_session_id.clone()),
            FileRole::Main => (false, None),
        };
        let project = file
            .path
            .ancestors()
            .skip(1)
            .find(|a| a.file_name().is_some_and(|n| n == "chats"))
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned());
        let stem = file
            .path
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let earlier_sibling =
            stem.starts_with("session-") && has_earlier_sibling(&file.path, &stem);
        Self {
            subagent,
            parent,
            project,
            workspace: file.workspace.clone(),
            stem: stem
                .strip_prefix("session-")
                .map_or_else(|| stem.clone(), str::to_owned),
            earlier_sibling,
        }
    }

    /// The `<id8>` a `session-<time>-<id8>` name ends with.
    fn id8(&self) -> Option<&str> {
        self.stem.rsplit_once('-').map(|(_, id8)| id8)
    }
}

/// Whether the directory of `path` holds another `session-*-<id8>.json[l]` chat (the same
/// last `-` part as `stem`) whose name sorts before `stem`: the CLI names a chat after the
/// minute it created it, so that file was written first. An unreadable directory has none.
fn has_earlier_sibling(path: &Path, stem: &str) -> bool {
    let Some((_, id8)) = stem.rsplit_once('-') else {
        return false;
    };
    let Some(Ok(entries)) = path.parent().map(std::fs::read_dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let other = name
            .strip_suffix(".jsonl")
            .or_else(|| name.strip_suffix(".json"));
        other.is_some_and(|o| {
            o.starts_with("session-") && o < stem && o.rsplit_once('-').map(|(_, i)| i) == Some(id8)
        })
    })
}

/// The incremental parser of one Gemini CLI session file.
pub struct GeminiParser {
    /// A legacy whole-file document rather than a line log.
    document: bool,
    layout: Layout,
    cursor: LineCursor,
    chain: FingerprintChain,
    stats: ParseStats,
    conv: Conversation,
    /// Document mode: the lines fed so far.
    doc: Vec<u8>,
}

impl GeminiParser {
    pub fn new(file: &SourceFile) -> Self {
        Self {
            document: is_document(file),
            layout: Layout::of(file),
            cursor: LineCursor::default(),
            chain: FingerprintChain::default(),
            stats: ParseStats {
                format_version: Some(
                    if is_document(file) {
                        "json document"
                    } else {
                        "jsonl log"
                    }
                    .to_owned(),
                ),
                ..ParseStats::default()
            },
            conv: Conversation::default(),
            doc: Vec::new(),
        }
    }

    /// One line of a log.
    fn line(&mut self, bytes: &[u8]) {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => self.conv.apply(Record::from_value(v), &mut self.stats),
            Err(_) => self.stats.malformed_lines += 1,
        }
    }

    /// Document mode: the conversation of the document fed so far, rebuilt from scratch (its
    /// skip counts too); a document that does not parse yields no conversation and counts as
    /// one malformed line.
    fn parse_document(&mut self) {
        self.conv = Conversation::default();
        self.stats.skipped_records.clear();
        self.stats.malformed_lines = 0;
        if self.doc.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match serde_json::from_slice::<Value>(&self.doc) {
            Ok(v) => self.conv.apply(Record::from_value(v), &mut self.stats),
            Err(_) => self.stats.malformed_lines = 1,
        }
    }

    /// The chain over the file's lines, with the workspace the registry gave folded in: the
    /// item changes when either does (a registry entry written after the session's lines
    /// still reaches the ledger).
    fn item_fingerprint(&self) -> String {
        match &self.layout.workspace {
            None => self.chain.hex(),
            Some(w) => super::store::fingerprint_parts([
                self.chain.hex().as_bytes(),
                b"workspace".as_slice(),
                w.as_bytes(),
            ]),
        }
    }

    /// The item's session id: the file's `sessionId`, except Code Assist's shared one, which
    /// names no conversation (every Code Assist log carries it, and they even share their first
    /// message's id): there the file is the session, `a2a-server/<project>/<file stem>` (the
    /// file's name alone is the minute the chat began, which another project's chat may share).
    ///
    /// A session id is the first file's of those that carry it: a later chat file of the same
    /// directory with the same id (a subagent's chat, or the conversation after `/clear`,
    /// which 2025 builds wrote to a new file under the same `sessionId`) is a session of its
    /// own, `<sessionId>/<file stem>`. Which file is first is read from the names (the CLI
    /// names a chat after the minute it created it), so every read of every file names its
    /// session the same way, whatever order they are read in.
    fn source_session_id(&self) -> Option<String> {
        let sid = self.conv.meta.session_id.as_deref()?;
        let later_file = self.layout.earlier_sibling
            && self.layout.id8().is_some_and(|id8| sid.starts_with(id8));
        let stem = &self.layout.stem;
        Some(match (&self.layout.project, sid) {
            (Some(project), CODE_ASSIST_SESSION_ID) => format!("{sid}/{project}/{stem}"),
            (None, CODE_ASSIST_SESSION_ID) => format!("{sid}/{stem}"),
            _ if later_file => format!("{sid}/{stem}"),
            _ => sid.to_owned(),
        })
    }

    fn session_info(&self) -> SessionInfo {
        let m = &self.conv.meta;
        let created = self.conv.created();
        let updated = match (m.last_updated, self.conv.max_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b).or(created),
        };
        let mut meta = Map::new();
        for (k, v) in [
            ("projectHash", &m.project_hash),
            ("kind", &m.kind),
            ("summary", &m.summary),
        ] {
            if let Some(v) = v {
                meta.insert(k.to_owned(), json!(v));
            }
        }
        if let Some(dirs) = &m.directories {
            meta.insert("directories".to_owned(), json!(dirs));
        }
        SessionInfo {
            created_at_ms: created,
            updated_at_ms: updated,
            model: self.conv.model().cloned(),
            provider: Some(MODEL_PROVIDER.to_owned()),
            project: self.layout.project.clone(),
            workspace_path: self.layout.workspace.clone(),
            is_subagent: self.layout.subagent || m.kind.as_deref() == Some("subagent"),
            parent_source_session_id: self.layout.parent.clone(),
            metadata: (!meta.is_empty()).then_some(Value::Object(meta)),
            ..SessionInfo::default()
        }
    }
}

impl SessionParser for GeminiParser {
    fn push_lines(&mut self, bytes: &[u8], offset: u64, emit: bool) {
        let mut cursor = std::mem::take(&mut self.cursor);
        let mut fed = false;
        cursor.feed(bytes, offset, |line| {
            fed = true;
            self.stats.lines += 1;
            // Every line moves the chain (the item's fingerprint): the item is re-sent so
            // that the ledger's fingerprint follows the file.
            self.chain.push(line.bytes);
            self.conv.header_dirty = true;
            if self.document {
                self.doc.extend_from_slice(line.bytes);
                self.doc.push(b'\n');
            } else {
                self.line(line.bytes);
            }
        });
        self.stats.lossy_lines = cursor.lossy_lines();
        self.cursor = cursor;
        if self.document && fed {
            self.parse_document();
        }
        if !emit {
            self.conv.discard_changes();
        }
    }

    fn take_items(&mut self) -> Vec<ImportSessionItem> {
        let Some(session_id) = self.source_session_id() else {
            return Vec::new();
        };
        let Some(changes) = self.conv.take_changes() else {
            return Vec::new();
        };
        let (mut turns, mut messages, mut tool_calls) = (Vec::new(), Vec::new(), Vec::new());
        for &ordinal in &changes.turns {
            rows::push_turn(
                &self.conv,
                ordinal,
                &changes,
                &mut turns,
                &mut messages,
                &mut tool_calls,
            );
        }
        vec![ImportSessionItem {
            source_provider: Provider::GeminiCli.as_str().to_owned(),
            source_session_id: session_id,
            source_session_fingerprint: self.item_fingerprint(),
            imported_at_ms: 0,
            session: self.session_info(),
            turns,
            messages,
            tool_calls,
            ..Default::default()
        }]
    }

    fn open_turn_offset(&self) -> u64 {
        // A document is only ever read whole; a log's state is rebuilt from `[0, offset)`
        // whole (see the module doc), so nothing before the cursor is emitted again.
        if self.document {
            0
        } else {
            self.cursor.consumed()
        }
    }

    fn fingerprint(&self) -> String {
        self.chain.hex()
    }

    fn stats(&self) -> &ParseStats {
        &self.stats
    }

    fn spawn_links(&self) -> BTreeMap<String, SpawnLink> {
        self.conv
            .spawns
            .iter()
            .filter_map(|(agent, tool)| Some((agent.clone(), rows::spawn_link(&self.conv, tool)?)))
            .collect()
    }

    fn resend_header(&mut self) {
        self.conv.header_dirty = true;
    }

    /// A Code Assist log's session as mapping 5 named it, without its project.
    fn renamed_sessions(&self) -> Vec<(String, String)> {
        let Some(current) = self.source_session_id() else {
            return Vec::new();
        };
        let former = format!("{CODE_ASSIST_SESSION_ID}/{}", self.layout.stem);
        let code_assist = self.conv.meta.session_id.as_deref() == Some(CODE_ASSIST_SESSION_ID);
        if code_assist && former != current {
            vec![(former, current)]
        } else {
            Vec::new()
        }
    }
}
