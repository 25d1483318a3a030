//! The standard corpus as FILES (TARGETS.md "The standard corpus"): a deterministic Claude Code
//! `projects/<project>/<session>.jsonl` tree, the input of the worker-side benchmarks
//! (`backfill`, `rebackfill`, `tail-latency`, `tail-scaling`).
//!
//! Every session is a sequence of turns: a user prompt, an assistant response split the way
//! Claude Code streams it (one line per content block, the same `message.id`, usage repeated
//! with a growing `output_tokens`), tool_use/tool_result pairs with 5-50 KB results, and about
//! two `progress` heartbeats per line (~2/3 of all lines). Every fifth session spawns a subagent
//! (`<session>/subagents/agent-<id>.jsonl` + `.meta.json`); every 200th (offset 100) is a
//! large session of 20-50 MB. 2,000 sessions come to about 1 GB.
//!
//! The same seed always gives the same bytes; [`TurnWriter`] also serves the tail benchmarks
//! that append complete turns to live files.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use super::rng::Rng;

/// What to generate.
#[derive(Debug, Clone, Copy)]
pub struct FileCorpusSpec {
    pub seed: u64,
    pub sessions: usize,
    /// Every Nth session (offset N/2) is large (0: none).
    pub large_every: usize,
    /// Size range of a large session in bytes.
    pub large_bytes: (u64, u64),
    /// Every Nth session spawns one subagent (0: none).
    pub subagent_every: usize,
}

impl Default for FileCorpusSpec {
    fn default() -> Self {
        Self {
            seed: 1,
            sessions: 200,
            large_every: 200,
            large_bytes: (20_000_000, 50_000_000),
            subagent_every: 5,
        }
    }
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCorpusStats {
    pub sessions: u64,
    pub subagents: u64,
    pub large_sessions: u64,
    pub turns: u64,
    pub lines: u64,
    pub progress_lines: u64,
    pub tool_calls: u64,
    pub bytes: u64,
}

impl FileCorpusStats {
    fn add(&mut self, o: &FileCorpusStats) {
        self.sessions += o.sessions;
        self.subagents += o.subagents;
        self.large_sessions += o.large_sessions;
        self.turns += o.turns;
        self.lines += o.lines;
        self.progress_lines += o.progress_lines;
        self.tool_calls += o.tool_calls;
        self.bytes += o.bytes;
    }
}

/// The `projects` root under `out`.
pub fn projects_dir(out: &Path) -> PathBuf {
    out.join("projects")
}

/// A deterministic session id of the corpus (UUID-shaped).
pub fn session_id(seed: u64, index: usize) -> String {
    format!(
        "{:08x}-{:04x}-4000-8000-{:012x}",
        (seed as u32),
        (index >> 16) & 0xffff,
        index as u64 & 0xffff_ffff_ffff
    )
}

/// Writes the corpus under `out` (`out/projects/...`); existing files of the same names are
/// replaced. Returns what was written.
///
/// # Errors
/// Any I/O error creating directories or writing files.
pub fn write_corpus(spec: &FileCorpusSpec, out: &Path) -> io::Result<FileCorpusStats> {
    let mut root = Rng::new(spec.seed);
    let mut stats = FileCorpusStats::default();
    let projects = projects_dir(out);
    for index in 0..spec.sessions {
        let mut rng = root.fork(index as u64);
        let dir = projects.join(format!("-work-proj-{:02}", index % 20));
        fs::create_dir_all(&dir)?;
        let sid = session_id(spec.seed, index);
        let large = spec.large_every > 0 && index % spec.large_every == spec.large_every / 2;
        let target = if large {
            rng.range(spec.large_bytes.0, spec.large_bytes.1)
        } else {
            // Most sessions are small; the mean comes to ~290 KB with the large ones apart.
            rng.range(20_000, 560_000)
        };
        let spawn = spec.subagent_every > 0 && index % spec.subagent_every == 1;
        let path = dir.join(format!("{sid}.jsonl"));
        let mut w = TurnWriter::new(&sid, None, rng.fork(1), start_ms(index));
        let mut file = BufWriter::with_capacity(1 << 20, fs::File::create(&path)?);
        let mut s = FileCorpusStats {
            sessions: 1,
            large_sessions: u64::from(large),
            ..Default::default()
        };
        let mut first = true;
        while s.bytes < target {
            let spawn_here = if spawn && first {
                Some(format!(
                    "{:07x}",
                    (index as u64).wrapping_mul(2_654_435_761) & 0xfff_ffff
                ))
            } else {
                None
            };
            first = false;
            let turn = w.turn(spawn_here.as_deref());
            file.write_all(turn.text.as_bytes())?;
            s.add(&turn.stats);
            if let Some(agent) = spawn_here {
                let sub_dir = dir.join(&sid).join("subagents");
                fs::create_dir_all(&sub_dir)?;
                let meta = json!({
                    "agentType": "general-purpose",
                    "description": "Investigate the module",
                    "toolUseId": turn.spawn_tool_use_id,
                });
                fs::write(
                    sub_dir.join(format!("agent-{agent}.meta.json")),
                    meta.to_string(),
                )?;
                let mut sub = TurnWriter::new(&sid, Some(&agent), rng.fork(2), w.now_ms);
                let mut sub_file = BufWriter::new(fs::File::create(
                    sub_dir.join(format!("agent-{agent}.jsonl")),
                )?);
                for _ in 0..rng.range(2, 6) {
                    let t = sub.turn(None);
                    sub_file.write_all(t.text.as_bytes())?;
                    s.add(&t.stats);
                }
                sub_file.flush()?;
                s.subagents += 1;
            }
        }
        file.flush()?;
        stats.add(&s);
    }
    Ok(stats)
}

fn start_ms(index: usize) -> i64 {
    // 2026-01-01T00:00:00Z plus ten minutes per session.
    1_767_225_600_000 + index as i64 * 600_000
}

/// One generated turn: its lines (each ending in `\n`) and counts.
#[derive(Debug, Clone)]
pub struct Turn {
    pub text: String,
    pub stats: FileCorpusStats,
    /// The `uuid` of the turn's user prompt line (its message's source id).
    pub user_uuid: String,
    /// The id of the spawning tool call when the turn spawned a subagent.
    pub spawn_tool_use_id: Option<String>,
}

/// Generates the turns of one session (or one subagent file) in order.
#[derive(Debug, Clone)]
pub struct TurnWriter {
    session_id: String,
    agent_id: Option<String>,
    rng: Rng,
    /// The timestamp of the next line.
    pub now_ms: i64,
    turn: u64,
    line: u64,
    parent: Option<String>,
}

impl TurnWriter {
    /// A writer for `session_id` (the root session's id for a subagent file, with `agent_id`).
    pub fn new(session_id: &str, agent_id: Option<&str>, rng: Rng, now_ms: i64) -> Self {
        Self {
            session_id: session_id.to_owned(),
            agent_id: agent_id.map(str::to_owned),
            rng,
            now_ms,
            turn: 0,
            line: 0,
            parent: None,
        }
    }

    /// Continues a session after `turns` turns already written (fresh uuids, later times).
    pub fn resume_after(mut self, turns: u64, now_ms: i64) -> Self {
        self.turn = turns;
        self.line = turns.saturating_mul(1_000);
        self.now_ms = now_ms;
        self
    }

    /// Takes later turns' content from `rng`; line uuids continue past every one so far.
    pub fn reseed(&mut self, rng: Rng) {
        self.rng = rng;
        self.line += 1_000_000;
    }

    /// The next complete turn. With `spawn_agent`, its one tool call is an `Agent` call whose
    /// result names that agent id.
    pub fn turn(&mut self, spawn_agent: Option<&str>) -> Turn {
        self.turn += 1;
        let mut t = Turn {
            text: String::new(),
            stats: FileCorpusStats {
                turns: 1,
                ..Default::default()
            },
            user_uuid: String::new(),
            spawn_tool_use_id: None,
        };
        let prompt = self.words(8, 40);
        let uuid = self.line_user(&mut t, json!(prompt));
        t.user_uuid = uuid;
        let r = self.rng.next_u64();
        let msg_id = format!("msg_{}_{r:x}_{}", self.tag(), self.turn);
        let req_id = format!("req_{:x}", self.rng.next_u64());
        let model = ["claude-opus-4-6", "claude-sonnet-4-5", "claude-haiku-4-5"]
            [self.rng.range(0, 3) as usize];
        let input_tokens = self.rng.range(2, 40);
        let mut output = self.rng.range(3, 30);
        let mut blocks =
            vec![json!({"type": "thinking", "thinking": self.words(10, 60), "signature": "sig"})];
        blocks.push(json!({"type": "text", "text": self.words(5, 80)}));
        let calls = if spawn_agent.is_some() {
            1
        } else {
            self.rng.range(0, 3)
        };
        let mut call_ids = Vec::new();
        for c in 0..calls {
            let r = self.rng.next_u64() & 0xffff_ffff;
            let id = format!("toolu_{}_{}_{c}_{r:x}", self.tag(), self.turn);
            let block = if spawn_agent.is_some() {
                json!({"type": "tool_use", "id": id, "name": "Agent", "input": {"description": "Investigate the module", "prompt": self.words(5, 20), "subagent_type": "general-purpose"}})
            } else if self.rng.range(0, 2) == 0 {
                json!({"type": "tool_use", "id": id, "name": "Read", "input": {"file_path": format!("/work/src/f{}.rs", self.rng.range(0, 500))}})
            } else {
                json!({"type": "tool_use", "id": id, "name": "Bash", "input": {"command": "cargo test --quiet"}})
            };
            blocks.push(block);
            call_ids.push(id);
        }
        for block in blocks {
            output += self.rng.range(5, 200);
            let usage = json!({"input_tokens": input_tokens, "output_tokens": output, "cache_read_input_tokens": self.rng.range(0, 5000), "cache_creation_input_tokens": 0, "service_tier": "standard"});
            let message = json!({"model": model, "id": msg_id, "type": "message", "role": "assistant", "content": [block], "stop_reason": null, "stop_sequence": null, "usage": usage});
            self.line_record(
                &mut t,
                "assistant",
                json!({"requestId": req_id, "message": message}),
            );
        }
        for id in &call_ids {
            t.stats.tool_calls += 1;
            if let Some(agent) = spawn_agent {
                self.progress(&mut t, json!({"type": "agent_progress", "agentId": agent, "prompt": "Investigate", "message": {"type": "user", "uuid": "x"}}), id);
                let content = json!([{"type": "text", "text": "Done."}, {"type": "text", "text": format!("agentId: {agent}")}]);
                self.line_record(&mut t, "user", json!({
                    "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": content}]},
                    "toolUseResult": {"status": "completed", "agentId": agent, "totalTokens": 900},
                }));
                t.spawn_tool_use_id = Some(id.clone());
            } else {
                let size = self.rng.range(5_000, 50_000) as usize;
                let body = self.blob(size);
                let is_error = self.rng.range(0, 20) == 0;
                self.line_record(&mut t, "user", json!({
                    "message": {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": body, "is_error": is_error}]},
                    "toolUseResult": {"stdout": "", "stderr": "", "interrupted": false},
                }));
            }
        }
        if !call_ids.is_empty() {
            let r = self.rng.next_u64();
            let msg_id = format!("msg_{}_{r:x}_{}f", self.tag(), self.turn);
            let usage = json!({"input_tokens": input_tokens + 5, "output_tokens": self.rng.range(5, 300), "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0, "service_tier": "standard"});
            let message = json!({"model": model, "id": msg_id, "type": "message", "role": "assistant", "content": [{"type": "text", "text": self.words(5, 60)}], "stop_reason": "end_turn", "stop_sequence": null, "usage": usage});
            let req = format!("req_{:x}", self.rng.next_u64());
            self.line_record(
                &mut t,
                "assistant",
                json!({"requestId": req, "message": message}),
            );
        }
        self.line_system(&mut t);
        t
    }

    fn tag(&self) -> &str {
        self.agent_id.as_deref().unwrap_or("m")
    }

    fn next_uuid(&mut self) -> String {
        self.line += 1;
        let r = self.rng.next_u64() as u32;
        format!("{}-{}-{r:08x}", self.tag(), self.line)
    }

    /// Common envelope fields, then `extra`, then the line's own uuid/timestamp.
    fn emit(
        &mut self,
        t: &mut Turn,
        kind: &str,
        extra: serde_json::Value,
        progress: bool,
    ) -> String {
        let uuid = self.next_uuid();
        self.now_ms += self.rng.range(50, 3_000) as i64;
        let mut line = serde_json::Map::new();
        line.insert("parentUuid".into(), json!(self.parent));
        line.insert("isSidechain".into(), json!(self.agent_id.is_some()));
        line.insert("userType".into(), json!("external"));
        line.insert("cwd".into(), json!("/work/proj"));
        line.insert("sessionId".into(), json!(self.session_id));
        line.insert("version".into(), json!("2.1.40"));
        line.insert("gitBranch".into(), json!("main"));
        line.insert("type".into(), json!(kind));
        if let serde_json::Value::Object(m) = extra {
            line.extend(m);
        }
        if let Some(a) = &self.agent_id {
            line.insert("agentId".into(), json!(a));
        }
        line.insert("uuid".into(), json!(uuid));
        line.insert("timestamp".into(), json!(iso8601(self.now_ms)));
        // A JSON object of plain values always serialises.
        let text = serde_json::Value::Object(line).to_string();
        t.text.push_str(&text);
        t.text.push('\n');
        t.stats.lines += 1;
        t.stats.bytes += text.len() as u64 + 1;
        if progress {
            t.stats.progress_lines += 1;
        } else {
            self.parent = Some(uuid.clone());
        }
        uuid
    }

    /// A record line followed by two heartbeats.
    fn line_record(&mut self, t: &mut Turn, kind: &str, extra: serde_json::Value) -> String {
        let uuid = self.emit(t, kind, extra, false);
        for _ in 0..2 {
            self.progress(t, json!({"type": "hook_progress", "hookEvent": "PostToolUse", "hookName": "PostToolUse:Bash", "command": "true"}), "hook");
        }
        uuid
    }

    fn line_user(&mut self, t: &mut Turn, content: serde_json::Value) -> String {
        self.line_record(
            t,
            "user",
            json!({"message": {"role": "user", "content": content}}),
        )
    }

    fn line_system(&mut self, t: &mut Turn) {
        let d = self.rng.range(1_000, 60_000);
        self.emit(
            t,
            "system",
            json!({"subtype": "turn_duration", "durationMs": d, "isMeta": false}),
            false,
        );
    }

    fn progress(&mut self, t: &mut Turn, data: serde_json::Value, tool_use_id: &str) {
        let id = format!("{tool_use_id}-{}", self.line);
        self.emit(
            t,
            "progress",
            json!({"data": data, "parentToolUseID": tool_use_id, "toolUseID": id}),
            true,
        );
    }

    fn words(&mut self, lo: u64, hi: u64) -> String {
        const WORDS: [&str; 16] = [
            "the", "module", "reads", "a", "file", "and", "returns", "its", "lines", "test",
            "fails", "because", "parser", "cursor", "ledger", "commit",
        ];
        let n = self.rng.range(lo, hi);
        let mut s = String::new();
        for i in 0..n {
            if i > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[(self.rng.next_u64() % 16) as usize]);
        }
        s
    }

    /// `size` bytes of log-like text (lines of hex and words).
    fn blob(&mut self, size: usize) -> String {
        let mut s = String::with_capacity(size + 64);
        while s.len() < size {
            let _ = writeln!(
                s,
                "{:5} {:016x} test module::case_{} ... ok",
                s.len() / 40,
                self.rng.next_u64(),
                self.rng.range(0, 10_000)
            );
        }
        s
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of a Unix time in milliseconds (proleptic Gregorian, UTC).
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{milli:03}Z",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_known_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(1_767_225_600_123), "2026-01-01T00:00:00.123Z");
        assert_eq!(iso8601(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn same_seed_same_bytes_and_shape() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let spec = FileCorpusSpec {
            sessions: 6,
            large_every: 0,
            ..Default::default()
        };
        let sa = write_corpus(&spec, a.path()).unwrap();
        let sb = write_corpus(&spec, b.path()).unwrap();
        assert_eq!(sa, sb);
        assert_eq!(sa.sessions, 6);
        assert_eq!(sa.subagents, 1);
        let progress_share = sa.progress_lines as f64 / sa.lines as f64;
        assert!((0.55..0.75).contains(&progress_share), "{progress_share}");
        let p = projects_dir(a.path())
            .join("-work-proj-01")
            .join(format!("{}.jsonl", session_id(1, 1)));
        let q = projects_dir(b.path())
            .join("-work-proj-01")
            .join(format!("{}.jsonl", session_id(1, 1)));
        assert_eq!(fs::read(&p).unwrap(), fs::read(&q).unwrap());
        for line in fs::read_to_string(&p).unwrap().lines() {
            serde_json::from_str::<serde_json::Value>(line).unwrap();
        }
    }
}
