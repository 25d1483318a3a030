//! Codex rollout files for the file corpus: `codex/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl`,
//! each a `session_meta` line then turns of `task_started`, `turn_context`, the user message
//! (response item + event), reasoning, function calls with 5-50 KB outputs, token counts, the
//! assistant message and `task_complete`. Deterministic from the seed.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::files::{FileCorpusStats, iso8601};
use super::rng::Rng;

/// The Codex root under `out`.
pub fn codex_sessions_dir(out: &Path) -> PathBuf {
    out.join("codex").join("sessions")
}

/// Writes `sessions` rollouts of `turns_lo..turns_hi` turns under `out/codex/sessions`.
///
/// # Errors
/// Any I/O error.
pub fn write_codex(
    seed: u64,
    sessions: usize,
    turns: (u64, u64),
    out: &Path,
) -> io::Result<FileCorpusStats> {
    let mut root = Rng::new(seed ^ 0xC0DE);
    let mut stats = FileCorpusStats::default();
    for index in 0..sessions {
        let mut rng = root.fork(index as u64);
        let id = format!("0199{:04x}-0000-7000-8000-{:012x}", seed & 0xffff, index);
        let mut now = 1_767_225_600_000 + index as i64 * 900_000;
        let ts = iso8601(now);
        let day = &ts[..10];
        let dir = codex_sessions_dir(out).join(day.replace('-', "/"));
        fs::create_dir_all(&dir)?;
        let name = format!("rollout-{}-{id}.jsonl", ts[..19].replace(':', "-"));
        let mut w = BufWriter::new(fs::File::create(dir.join(name))?);
        let mut line = |now: i64, kind: &str, payload: Value| -> io::Result<u64> {
            let text =
                json!({"timestamp": iso8601(now), "type": kind, "payload": payload}).to_string();
            w.write_all(text.as_bytes())?;
            w.write_all(b"\n")?;
            Ok(text.len() as u64 + 1)
        };
        let mut s = FileCorpusStats {
            sessions: 1,
            ..Default::default()
        };
        s.bytes += line(
            now,
            "session_meta",
            json!({"id": id, "timestamp": iso8601(now), "cwd": "/work/cx", "originator": "codex_cli_rs",
                   "cli_version": "0.150.0", "source": "cli", "model_provider": "openai"}),
        )?;
        s.lines += 1;
        let (mut input, mut output) = (0u64, 0u64);
        for t in 0..rng.range(turns.0, turns.1) {
            // Turn and call ids unique across rollouts, as real ones (uuids, `call_...`) are.
            let turn_id = format!("t-{index:x}-{t}");
            let prompt = format!("Change number {t} of module {}", rng.range(0, 100));
            let mut records: Vec<(&str, Value)> = vec![
                (
                    "event_msg",
                    json!({"type": "task_started", "turn_id": turn_id, "model_context_window": 272000}),
                ),
                (
                    "turn_context",
                    json!({"turn_id": turn_id, "cwd": "/work/cx", "model": "gpt-5-codex", "approval_policy": "never"}),
                ),
                (
                    "response_item",
                    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": prompt}]}),
                ),
                (
                    "event_msg",
                    json!({"type": "user_message", "message": prompt, "images": []}),
                ),
                (
                    "response_item",
                    json!({"type": "reasoning", "summary": [{"type": "summary_text", "text": "Look first."}], "encrypted_content": "E"}),
                ),
            ];
            for c in 0..rng.range(1, 3) {
                let call_id = format!("call_{index:x}_{t}_{c}");
                let mut out_text = String::new();
                let size = rng.range(5_000, 50_000) as usize;
                while out_text.len() < size {
                    let _ = writeln!(
                        out_text,
                        "src/m{}.rs:{}: fn f() {{}}",
                        rng.range(0, 99),
                        rng.range(1, 900)
                    );
                }
                records.push((
                    "response_item",
                    json!({"type": "function_call", "name": "exec_command", "arguments": "{\"cmd\":\"rg fn\"}", "call_id": call_id}),
                ));
                records.push((
                    "response_item",
                    json!({"type": "function_call_output", "call_id": call_id, "output": out_text}),
                ));
                s.tool_calls += 1;
            }
            input += rng.range(500, 5_000);
            output += rng.range(20, 500);
            let usage = json!({"input_tokens": input, "cached_input_tokens": input / 2, "output_tokens": output, "reasoning_output_tokens": output / 4, "total_tokens": input + output});
            let answer = format!("Done with change {t}.");
            records.push((
                "event_msg",
                json!({"type": "token_count", "info": {"total_token_usage": usage, "last_token_usage": usage, "model_context_window": 272000}}),
            ));
            records.push((
                "event_msg",
                json!({"type": "agent_message", "message": answer}),
            ));
            records.push((
                "response_item",
                json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": answer}]}),
            ));
            records.push((
                "event_msg",
                json!({"type": "task_complete", "turn_id": turn_id, "last_agent_message": answer}),
            ));
            for (kind, payload) in records {
                now += rng.range(50, 2_000) as i64;
                s.bytes += line(now, kind, payload)?;
                s.lines += 1;
            }
            s.turns += 1;
        }
        w.flush()?;
        stats.sessions += s.sessions;
        stats.turns += s.turns;
        stats.lines += s.lines;
        stats.tool_calls += s.tool_calls;
        stats.bytes += s.bytes;
    }
    Ok(stats)
}
