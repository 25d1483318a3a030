//! Deterministic corpus of Claude Code-like sessions (`--seed`, `--sessions N`), as import items
//! and as the stdout of a worker importing them: one `import.batch` per session with its file
//! cursor, large sessions (one in `large_every`) sent as `import.chunk` uploads of
//! `chunk_bytes` parts, a `run.progress` every 50 sessions and a final `run.complete`.
//!
//! Shape (TARGETS.md "The standard corpus"): turns of a user prompt, 1-3 assistant messages
//! and 0-3 tool calls whose results are 5-50 KB of text; large sessions have `large_turns`
//! ±25 % turns (default 200, about 10 MB of frames).

use std::io::Write;

use base64::Engine;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::rng::Rng;
use nex::protocol::{
    ChunkRequest, Cursor, ENCODING_GZIP_BASE64, ImportRequest, ImportSessionItem, Message,
    RunProgress, SessionInfo, ToolCall, Turn, WorkerFrame,
};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorpusSpec {
    pub seed: u64,
    pub sessions: usize,
    /// Every `large_every`-th session is large and chunked (0: none).
    pub large_every: usize,
    /// Size of one chunk part's `data`.
    pub chunk_bytes: usize,
    /// Mean turns of a large session (±25 %).
    pub large_turns: u64,
}

impl Default for CorpusSpec {
    fn default() -> Self {
        Self {
            seed: 1,
            sessions: 200,
            large_every: 50,
            chunk_bytes: 1 << 20,
            large_turns: 200,
        }
    }
}

/// Counts of a generated corpus.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorpusStats {
    pub sessions: u64,
    pub chunked_sessions: u64,
    pub frames: u64,
    pub bytes: u64,
    pub turns: u64,
    pub messages: u64,
    pub tool_calls: u64,
}

/// A generated corpus: the items and the frame stream that carries them.
pub struct Corpus {
    pub run_id: String,
    pub items: Vec<ImportSessionItem>,
    /// JSON Lines, newline-terminated.
    pub frames: Vec<u8>,
    pub stats: CorpusStats,
}

const WORDS: &[&str] = &[
    "the", "function", "returns", "a", "value", "when", "called", "with", "error", "handling",
    "struct", "field", "module", "test", "passes", "fails", "because", "of", "missing", "import",
    "async", "await", "stream", "batch", "commit", "ledger", "session", "turn", "message", "tool",
    "result", "file", "path", "line", "column", "compile", "cargo", "build", "warning", "unused",
    "variable", "let", "mut", "impl", "trait", "for", "fn", "match", "some", "none", "ok", "err",
    "vec", "string", "into", "iter", "map", "filter", "collect", "clone", "borrow", "lifetime",
];

/// Word salad of `lo..hi` bytes (compresses like prose and code, unlike random bytes).
fn text(rng: &mut Rng, lo: u64, hi: u64) -> String {
    let bytes = rng.range(lo, hi) as usize;
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        let w = WORDS[rng.range(0, WORDS.len() as u64) as usize];
        out.push_str(w);
        out.push(if rng.range(0, 12) == 0 { '\n' } else { ' ' });
    }
    out
}

/// One session; `large` sessions have many more turns.
pub fn session(seed: u64, index: usize, large_turns: Option<u64>) -> ImportSessionItem {
    let mut rng = Rng::new(seed).fork(index as u64);
    let session_id = format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        rng.next_u64() as u32,
        index as u16,
        rng.next_u64() & 0xFFFF_FFFF_FFFF
    );
    let created = 1_760_000_000_000i64 + index as i64 * 3_600_000;
    let turns_n = match large_turns {
        Some(mean) => rng.range(mean * 3 / 4, mean * 5 / 4 + 1),
        None => rng.range(2, 12),
    };
    let mut turns = Vec::new();
    let mut messages = Vec::new();
    let mut tool_calls = Vec::new();
    let mut t_ms = created;
    let mut seq = 0i64;
    for t in 0..turns_n {
        let turn_id = format!("turn-{t}");
        let started = t_ms;
        let user_id = format!("msg-{t}-u");
        messages.push(Message {
            source_message_id: user_id.clone(),
            source_turn_id: Some(turn_id.clone()),
            role: "user".into(),
            content: Some(text(&mut rng, 50, 2000)),
            sequence: seq,
            created_at_ms: t_ms,
            ..Default::default()
        });
        seq += 1;
        let mut last_assistant = user_id.clone();
        for a in 0..rng.range(1, 4) {
            t_ms += rng.range(500, 20_000) as i64;
            let id = format!("msg-{t}-a{a}");
            messages.push(Message {
                source_message_id: id.clone(),
                source_turn_id: Some(turn_id.clone()),
                role: "assistant".into(),
                content: Some(text(&mut rng, 100, 3000)),
                sequence: seq,
                created_at_ms: t_ms,
                ..Default::default()
            });
            seq += 1;
            last_assistant = id;
        }
        for c in 0..rng.range(0, 4) {
            let start = t_ms + 10;
            t_ms += rng.range(100, 5_000) as i64;
            tool_calls.push(ToolCall {
                source_tool_call_id: format!("toolu-{t}-{c}"),
                source_turn_id: Some(turn_id.clone()),
                source_message_id: Some(last_assistant.clone()),
                tool_name: ["Read", "Bash", "Edit", "Grep"][rng.range(0, 4) as usize].into(),
                params_json: Some(
                    json!({"path": format!("/work/src/file_{}.rs", rng.range(0, 500))}).into(),
                ),
                result_json: Some(Value::String(text(&mut rng, 5_000, 50_000)).into()),
                status: Some("completed".into()),
                started_at_ms: start,
                completed_at_ms: Some(t_ms),
                sequence: c as i64,
                ..Default::default()
            });
        }
        let input = rng.range(100, 20_000) as i64;
        let output = rng.range(50, 4_000) as i64;
        turns.push(Turn {
            source_turn_id: turn_id,
            parent_source_turn_id: (t > 0).then(|| format!("turn-{}", t - 1)),
            started_at_ms: started,
            completed_at_ms: Some(t_ms),
            model: Some("claude-sonnet-4-5".into()),
            input_tokens: Some(input),
            output_tokens: Some(output),
            total_tokens: Some(input + output),
            query_message_source_ids: vec![user_id],
            response_message_source_id: Some(last_assistant),
            ..Default::default()
        });
        t_ms += rng.range(10_000, 600_000) as i64;
    }
    ImportSessionItem {
        source_provider: "claude-code".into(),
        source_session_id: session_id,
        source_session_fingerprint: format!(
            "sha256:{:016x}{:016x}",
            rng.next_u64(),
            rng.next_u64()
        ),
        imported_at_ms: created + 86_400_000,
        session: SessionInfo {
            created_at_ms: Some(created),
            updated_at_ms: Some(t_ms),
            model: Some("claude-sonnet-4-5".into()),
            workspace_path: Some(format!("/work/project-{}", index % 17)),
            ..Default::default()
        },
        turns,
        messages,
        tool_calls,
        ..Default::default()
    }
}

fn cursor_for(item: &ImportSessionItem, index: usize) -> Cursor {
    Cursor {
        key: format!(
            "claude-code:/home/u/.claude/projects/p{}/{}.jsonl",
            index % 17,
            item.source_session_id
        ),
        value: json!({"offset": item.messages.len() * 4096, "fingerprint": item.source_session_fingerprint}),
    }
}

/// The chunk requests of one large item (gzip+base64, `chunk_bytes` per part).
pub fn chunk_upload(
    item: &ImportSessionItem,
    key: &str,
    chunk_bytes: usize,
    cursor: Cursor,
) -> Vec<ChunkRequest> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    // Writing to a Vec cannot fail; serialising an item cannot fail.
    serde_json::to_writer(&mut gz, item).expect("item serialises");
    let compressed = gz.finish().expect("in-memory gzip");
    let encoded = base64::engine::general_purpose::STANDARD.encode(compressed);
    let parts: Vec<&[u8]> = encoded.as_bytes().chunks(chunk_bytes.max(4)).collect();
    let total = parts.len() as i64;
    parts
        .into_iter()
        .enumerate()
        .map(|(i, data)| ChunkRequest {
            source: "aix".into(),
            mode: "backfill".into(),
            idempotency_key: key.into(),
            upload_id: format!("upload:{key}"),
            chunk_index: i as i64,
            chunk_total: total,
            encoding: ENCODING_GZIP_BASE64.into(),
            // base64 is ASCII.
            data: String::from_utf8_lossy(data).into_owned().into(),
            source_provider: item.source_provider.clone(),
            source_session_id: item.source_session_id.clone(),
            source_session_fingerprint: item.source_session_fingerprint.clone(),
            cursors: if i as i64 == total - 1 {
                vec![cursor.clone()]
            } else {
                Vec::new()
            },
            ..Default::default()
        })
        .collect()
}

/// Generates the corpus of `spec`. Same spec, same bytes.
pub fn generate(spec: CorpusSpec) -> Corpus {
    let run_id = format!(
        "00000000-0000-4000-8000-{:012x}",
        spec.seed & 0xFFFF_FFFF_FFFF
    );
    let mut frames = Vec::new();
    let mut stats = CorpusStats::default();
    let mut items = Vec::with_capacity(spec.sessions);
    let mut seq = 0u64;
    let mut push = |frame: WorkerFrame, frames: &mut Vec<u8>, stats: &mut CorpusStats| {
        seq += 1;
        let line = frame.encode(&run_id, seq);
        frames.extend_from_slice(line.as_bytes());
        frames.push(b'\n');
        stats.frames += 1;
    };
    for i in 0..spec.sessions {
        let large = spec.large_every > 0 && i % spec.large_every == spec.large_every - 1;
        let item = session(spec.seed, i, large.then_some(spec.large_turns));
        stats.sessions += 1;
        stats.turns += item.turns.len() as u64;
        stats.messages += item.messages.len() as u64;
        stats.tool_calls += item.tool_calls.len() as u64;
        let key = format!(
            "aix:backfill:claude-code:{}:{}",
            item.source_session_id, item.source_session_fingerprint
        );
        let cursor = cursor_for(&item, i);
        if large {
            stats.chunked_sessions += 1;
            for part in chunk_upload(&item, &key, spec.chunk_bytes, cursor) {
                push(WorkerFrame::ImportChunk(part), &mut frames, &mut stats);
            }
        } else {
            let req = ImportRequest {
                source: "aix".into(),
                mode: "backfill".into(),
                idempotency_key: key,
                items: vec![item.clone()],
                cursors: vec![cursor],
                ..Default::default()
            };
            push(WorkerFrame::ImportBatch(req), &mut frames, &mut stats);
        }
        items.push(item);
        if (i + 1) % 50 == 0 {
            let progress = RunProgress {
                total: Some(spec.sessions as u64),
                emitted: Some(i as u64 + 1),
                ..Default::default()
            };
            push(WorkerFrame::RunProgress(progress), &mut frames, &mut stats);
        }
    }
    let done = RunProgress {
        total: Some(spec.sessions as u64),
        emitted: Some(spec.sessions as u64),
        ..Default::default()
    };
    push(WorkerFrame::RunComplete(done), &mut frames, &mut stats);
    stats.bytes = frames.len() as u64;
    Corpus {
        run_id,
        items,
        frames,
        stats,
    }
}

/// Writes the frame stream of `corpus` to `out`.
pub fn write_frames(corpus: &Corpus, out: &mut impl Write) -> std::io::Result<()> {
    out.write_all(&corpus.frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nex::protocol::decode_worker_frame;

    #[test]
    fn deterministic_and_decodable() {
        let spec = CorpusSpec {
            seed: 3,
            sessions: 6,
            large_every: 3,
            chunk_bytes: 64 * 1024,
            large_turns: 8,
        };
        let a = generate(spec);
        let b = generate(spec);
        assert_eq!(a.frames, b.frames);
        assert_eq!(a.stats.chunked_sessions, 2);
        let mut chunks = 0;
        for line in a.frames.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let frame = decode_worker_frame(std::str::from_utf8(line).unwrap()).unwrap();
            if matches!(frame.body, WorkerFrame::ImportChunk(_)) {
                chunks += 1;
            }
        }
        assert!(chunks >= 2);
        let results: Vec<usize> = a
            .items
            .iter()
            .flat_map(|i| &i.tool_calls)
            .map(
                |c| match c.result_json.as_ref().and_then(|j| j.as_value()) {
                    Some(Value::String(s)) => s.len(),
                    _ => 0,
                },
            )
            .collect();
        assert!(results.iter().all(|n| (5_000..50_100).contains(n)));
        assert_ne!(generate(CorpusSpec { seed: 4, ..spec }).frames, a.frames);
    }
}
