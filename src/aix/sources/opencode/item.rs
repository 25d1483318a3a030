//! One session's rows to its import item (the mapping rules of the module docs), its
//! fingerprint, and the spawn links its `task` tool parts name.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value, json};

use super::record::{MessageData, PartData};
use super::{Head, MessageRow, PartRow, Rows};
use crate::aix::sources::common::{count_skip, join_nonempty, later};
use crate::aix::sources::store::fingerprint_parts;
use crate::aix::sources::{ParseStats, Provider};
use crate::protocol::{ImportSessionItem, Message, SessionInfo, ToolCall, ToolJson, Turn};

/// What a parent's `task` tool part says about the child session it spawned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    /// The task part's `callID` (its part id when it has none): the parent's tool call id.
    pub call_id: String,
    /// `state.input.description`.
    pub description: Option<String>,
    /// The task's tool status (`pending`, `running`, `completed`, `failed`).
    pub status: String,
}

/// Child session id -> its link, as one parent's parts give them.
pub(super) type LinkMap = BTreeMap<String, Link>;

/// A short hash of a link map (`-` when empty), stored in cursor tokens so that a change of
/// the links a parent gives re-reads its children.
pub(super) fn links_hash(map: &LinkMap) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for (child, link) in map {
        parts.push(child.as_bytes());
        parts.push(link.call_id.as_bytes());
        parts.push(link.description.as_deref().unwrap_or("").as_bytes());
        parts.push(link.status.as_bytes());
    }
    fingerprint_parts(parts)[..16].to_owned()
}

/// The links of a session's parts, every part considered (whatever its message), in part-id
/// order; the first part naming a child wins. Parts that do not parse name nobody.
pub(super) fn links<'a>(parts: impl IntoIterator<Item = (&'a str, &'a PartData)>) -> LinkMap {
    let mut sorted: Vec<(&str, &PartData)> = parts.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut map = LinkMap::new();
    for (part_id, part) in sorted {
        let Some(child) = part.spawned_session().filter(|c| !c.is_empty()) else {
            continue;
        };
        let state = part.state.0.as_ref();
        map.entry(child.to_owned()).or_insert_with(|| Link {
            call_id: part.call_id.clone().unwrap_or_else(|| part_id.to_owned()),
            description: state
                .and_then(|s| s.input.as_ref())
                .and_then(|i| i.get("description"))
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            status: tool_status(state.and_then(|s| s.status.as_deref())).to_owned(),
        });
    }
    map
}

/// The links of raw part rows (a parent read only for its `task` parts).
pub(super) fn links_of_rows<'a>(parts: impl IntoIterator<Item = &'a PartRow>) -> LinkMap {
    let parsed: Vec<(&str, PartData)> = parts
        .into_iter()
        .filter_map(|p| Some((p.id.as_str(), serde_json::from_slice(&p.data).ok()?)))
        .collect();
    links(parsed.iter().map(|(id, p)| (*id, p)))
}

/// The ledger's tool status of an OpenCode tool state.
fn tool_status(status: Option<&str>) -> &'static str {
    match status {
        Some("completed") => "completed",
        Some("error") => "failed",
        Some("running") => "running",
        _ => "pending",
    }
}

/// A built item and the links its session's parts give its children.
pub(super) struct Built {
    pub item: ImportSessionItem,
    pub links: LinkMap,
}

/// A part row with its parsed value.
type ParsedPart<'a> = (&'a PartRow, PartData);

/// Token sums of a turn: input, output, reasoning, cache read, cache write.
type TokenSums = [i64; 5];

struct TurnAcc {
    turn: Turn,
    tokens: Option<TokenSums>,
}

/// Builds the item of `head` from its `rows` (`link`: what its parent says about it). Never
/// fails: a malformed message or part value is skipped and counted in `stats`.
pub(super) fn build(
    head: &Head,
    rows: &Rows,
    link: Option<&Link>,
    stats: &mut ParseStats,
) -> Built {
    let mut messages: Vec<&MessageRow> = rows.messages.iter().collect();
    messages.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
    let fingerprint = fingerprint(head, &messages, &rows.orphans, link);

    // Parse every part once; links consider all of them, the item those of kept messages.
    let parse_part = |p: &PartRow, stats: &mut ParseStats| -> Option<PartData> {
        stats.lines += 1;
        match serde_json::from_slice::<PartData>(&p.data) {
            Ok(d) => Some(d),
            Err(_) => {
                stats.malformed_lines += 1;
                None
            }
        }
    };
    let mut parsed: Vec<(&MessageRow, Option<MessageData>, Vec<ParsedPart<'_>>)> = Vec::new();
    for m in &messages {
        stats.lines += 1;
        let data = match serde_json::from_slice::<MessageData>(&m.data) {
            Ok(d) => Some(d),
            Err(_) => {
                stats.malformed_lines += 1;
                None
            }
        };
        let mut parts: Vec<&PartRow> = m.parts.iter().collect();
        parts.sort_by(|a, b| a.id.cmp(&b.id));
        let parts = parts
            .into_iter()
            .filter_map(|p| Some((p, parse_part(p, stats)?)))
            .collect();
        parsed.push((m, data, parts));
    }
    let orphans: Vec<ParsedPart<'_>> = rows
        .orphans
        .iter()
        .filter_map(|p| Some((p, parse_part(p, stats)?)))
        .collect();
    for _ in &orphans {
        count_skip(stats, "part:orphan");
    }
    let links = links(
        parsed
            .iter()
            .flat_map(|(_, _, parts)| parts.iter())
            .chain(orphans.iter())
            .map(|(row, data)| (row.id.as_str(), data)),
    );

    let mut b = Builder::default();
    for (row, data, parts) in &parsed {
        let Some(data) = data else {
            continue;
        };
        b.message(head, row, data, parts, stats);
    }
    let item = ImportSessionItem {
        source_provider: Provider::OpenCode.as_str().to_owned(),
        source_session_id: head.id.clone(),
        source_session_fingerprint: fingerprint,
        imported_at_ms: 0,
        session: b.session_info(head, link),
        turns: b
            .turns
            .into_iter()
            .map(|mut t| {
                if let Some([input, output, reasoning, read, write]) = t.tokens {
                    t.turn.input_tokens = Some(input);
                    t.turn.output_tokens = Some(output);
                    t.turn.reasoning_tokens = Some(reasoning);
                    t.turn.cached_input_tokens = Some(read);
                    t.turn.cache_write_tokens = Some(write);
                    t.turn.total_tokens = Some(
                        [output, reasoning, read, write]
                            .into_iter()
                            .fold(input, i64::saturating_add),
                    );
                }
                t.turn
            })
            .collect(),
        messages: b.messages,
        tool_calls: b.tools,
        ..Default::default()
    };
    Built { item, links }
}

/// The fingerprint of the stored values that make the item, in a fixed order: the header
/// values, each message (id, `created` column, `data`) with its parts (id, `data`) in id order,
/// orphan parts, and the parent's link.
fn fingerprint(
    head: &Head,
    messages: &[&MessageRow],
    orphans: &[PartRow],
    link: Option<&Link>,
) -> String {
    let num = |v: Option<i64>| v.map(|n| n.to_string()).unwrap_or_default();
    let header: Vec<String> = vec![
        "opencode/1".to_owned(),
        head.id.clone(),
        head.parent.clone().unwrap_or_default(),
        num(head.created),
        num(head.updated),
        num(head.archived),
        head.title.clone().unwrap_or_default(),
        head.directory.clone().unwrap_or_default(),
        head.project_id.clone().unwrap_or_default(),
        head.version.clone().unwrap_or_default(),
        head.slug.clone().unwrap_or_default(),
    ];
    let created: Vec<String> = messages.iter().map(|m| num(m.created)).collect();
    let mut parts: Vec<&[u8]> = header.iter().map(|s| s.as_bytes()).collect();
    for (m, created) in messages.iter().zip(&created) {
        parts.extend([
            b"m".as_slice(),
            m.id.as_bytes(),
            created.as_bytes(),
            &m.data,
        ]);
        let mut ps: Vec<&PartRow> = m.parts.iter().collect();
        ps.sort_by(|a, b| a.id.cmp(&b.id));
        for p in ps {
            parts.extend([b"p".as_slice(), p.id.as_bytes(), &p.data]);
        }
    }
    for p in orphans {
        parts.extend([b"o".as_slice(), p.id.as_bytes(), &p.data]);
    }
    if let Some(l) = link {
        parts.extend([
            b"l".as_slice(),
            l.call_id.as_bytes(),
            l.description.as_deref().unwrap_or("").as_bytes(),
            l.status.as_bytes(),
        ]);
    }
    fingerprint_parts(parts)
}

#[derive(Default)]
struct Builder {
    turns: Vec<TurnAcc>,
    /// Turn index by the id of the user message that opened it.
    by_id: HashMap<String, usize>,
    current: Option<usize>,
    messages: Vec<Message>,
    tools: Vec<ToolCall>,
    tool_ids: std::collections::HashSet<String>,
    first_created: Option<i64>,
    last_activity: Option<i64>,
    model: Option<(String, Option<String>)>,
    user_model: Option<(String, Option<String>)>,
}

impl Builder {
    fn open_turn(&mut self, id: &str, at: i64) -> usize {
        let parent = self.turns.last().map(|t| t.turn.source_turn_id.clone());
        self.turns.push(TurnAcc {
            turn: Turn {
                source_turn_id: id.to_owned(),
                parent_source_turn_id: parent,
                started_at_ms: at,
                completed_at_ms: Some(at),
                ..Turn::default()
            },
            tokens: None,
        });
        let idx = self.turns.len() - 1;
        self.by_id.insert(id.to_owned(), idx);
        self.current = Some(idx);
        idx
    }

    fn message(
        &mut self,
        head: &Head,
        row: &MessageRow,
        data: &MessageData,
        parts: &[ParsedPart<'_>],
        stats: &mut ParseStats,
    ) {
        let Some(role) = data.role.as_deref().map(str::to_ascii_lowercase) else {
            count_skip(stats, "message:no_role");
            return;
        };
        let created = data
            .time
            .0
            .as_ref()
            .and_then(|t| t.created)
            .or(row.created)
            .or(head.created)
            .unwrap_or(0);
        let is_user = role == "user";
        let turn_idx = if is_user {
            self.open_turn(&row.id, created)
        } else {
            match data.parent_id.as_ref().and_then(|p| self.by_id.get(p)) {
                Some(&i) => i,
                None => match self.current {
                    Some(i) => i,
                    None => self.open_turn(&row.id, created),
                },
            }
        };
        let turn_id = self.turns[turn_idx].turn.source_turn_id.clone();
        let mut texts = Vec::new();
        let mut injected = Vec::new();
        let mut thinking = Vec::new();
        let mut ends = vec![
            Some(created),
            data.time.0.as_ref().and_then(|t| t.completed),
        ];
        for (part, pd) in parts {
            match pd.kind.as_deref() {
                Some("text") if pd.synthetic == Some(true) && pd.ignored != Some(true) => {
                    count_skip(stats, "part:text_synthetic");
                    injected.extend(pd.text.clone());
                }
                Some("text") if pd.ignored == Some(true) => {
                    count_skip(stats, "part:text_synthetic");
                }
                Some("text") => texts.extend(pd.text.clone()),
                Some("reasoning") => thinking.extend(pd.text.clone()),
                Some("tool") => {
                    let end = self.tool(part, pd, &turn_id, &row.id, created, stats);
                    ends.push(end);
                }
                Some(other) => count_skip(stats, &format!("part:{other}")),
                None => count_skip(stats, "part:unknown"),
            }
        }
        // A user message with no text of the user's own (a `!command` run from the prompt box,
        // the continuation OpenCode sends after compacting) is still the prompt of its turn:
        // its text is what OpenCode injected.
        let content =
            join_nonempty(texts).or_else(|| is_user.then(|| join_nonempty(injected)).flatten());
        let thinking = join_nonempty(thinking);

        let acc = &mut self.turns[turn_idx];
        for end in ends {
            later(&mut acc.turn.completed_at_ms, end);
            later(&mut self.last_activity, end);
        }
        if self.first_created.is_none() {
            self.first_created = Some(created);
        }
        let model = data
            .model()
            .map(|m| (m.to_owned(), data.provider().map(str::to_owned)));
        if let Some((m, p)) = &model
            && (!is_user || acc.turn.model.is_none())
        {
            acc.turn.model = Some(m.clone());
            acc.turn.provider.clone_from(p);
        }
        if is_user {
            acc.turn.query_message_source_ids.push(row.id.clone());
            if model.is_some() {
                self.user_model = model;
            }
        } else {
            if model.is_some() {
                self.model = model;
            }
            if let Some(t) = data.tokens.0.as_ref() {
                let cache = t.cache.0.as_ref();
                let add = [
                    t.input,
                    t.output,
                    t.reasoning,
                    cache.and_then(|c| c.read),
                    cache.and_then(|c| c.write),
                ];
                let sums = acc.tokens.get_or_insert([0; 5]);
                for (sum, v) in sums.iter_mut().zip(add) {
                    *sum = sum.saturating_add(v.unwrap_or(0));
                }
            }
            if role == "assistant" && content.is_some() {
                acc.turn.response_message_source_id = Some(row.id.clone());
            }
        }
        let mut meta = Map::new();
        for (k, v) in [
            ("agent", data.agent.as_deref()),
            ("mode", data.mode.as_deref()),
            ("modelID", data.model()),
            ("providerID", data.provider()),
            ("finish", data.finish.as_deref()),
            ("parentID", data.parent_id.as_deref()),
        ] {
            if let Some(v) = v {
                meta.insert(k.to_owned(), json!(v));
            }
        }
        if let Some(cost) = &data.cost {
            meta.insert("cost".to_owned(), cost.clone());
        }
        self.messages.push(Message {
            source_message_id: row.id.clone(),
            source_turn_id: Some(turn_id),
            role,
            content,
            sequence: self.messages.len() as i64,
            created_at_ms: created,
            thinking,
            context_json: None,
            metadata_json: (!meta.is_empty()).then_some(Value::Object(meta)),
        });
    }

    /// Adds a `tool` part's call; returns its end time.
    fn tool(
        &mut self,
        part: &PartRow,
        pd: &PartData,
        turn_id: &str,
        message_id: &str,
        created: i64,
        stats: &mut ParseStats,
    ) -> Option<i64> {
        let id = pd.call_id.clone().unwrap_or_else(|| part.id.clone());
        if !self.tool_ids.insert(id.clone()) {
            count_skip(stats, "part:tool_duplicate");
            return None;
        }
        let state = pd.state.0.as_ref();
        let times = state.and_then(|s| s.time.0.as_ref());
        let end = times.and_then(|t| t.end);
        self.tools.push(ToolCall {
            source_tool_call_id: id,
            source_turn_id: Some(turn_id.to_owned()),
            source_message_id: Some(message_id.to_owned()),
            tool_name: pd.tool.clone().unwrap_or_else(|| "unknown".to_owned()),
            tool_number: None,
            params_json: state.and_then(|s| s.input.clone()).map(ToolJson::from),
            result_json: state.and_then(|s| s.output.clone()).map(ToolJson::from),
            status: Some(tool_status(state.and_then(|s| s.status.as_deref())).to_owned()),
            spawned_source_session_id: pd
                .spawned_session()
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            started_at_ms: times.and_then(|t| t.start).unwrap_or(created),
            completed_at_ms: end,
            sequence: self.tools.len() as i64,
            error: state.and_then(|s| s.error.clone()),
            result_source_message_id: None,
        });
        end
    }

    fn session_info(&self, head: &Head, link: Option<&Link>) -> SessionInfo {
        let created = head.created.or(self.first_created);
        let mut updated = head.updated.or(created);
        later(&mut updated, self.last_activity);
        let (model, provider) = self
            .model
            .clone()
            .or_else(|| self.user_model.clone())
            .map_or((None, None), |(m, p)| (Some(m), p));
        let mut meta = Map::new();
        for (k, v) in [
            ("title", head.title.as_deref()),
            ("version", head.version.as_deref()),
            ("projectId", head.project_id.as_deref()),
            ("slug", head.slug.as_deref()),
        ] {
            if let Some(v) = v {
                meta.insert(k.to_owned(), json!(v));
            }
        }
        if let Some(a) = head.archived {
            meta.insert("archivedAtMs".to_owned(), json!(a));
        }
        SessionInfo {
            created_at_ms: created,
            updated_at_ms: updated,
            model,
            provider,
            workspace_path: head.directory.clone(),
            is_subagent: head.parent.is_some(),
            parent_source_session_id: head.parent.clone(),
            spawn_tool_call_id: link.map(|l| l.call_id.clone()),
            task_description: link.and_then(|l| l.description.clone()),
            task_status: link.map(|l| l.status.clone()),
            metadata: (!meta.is_empty()).then_some(Value::Object(meta)),
            ..SessionInfo::default()
        }
    }
}
