use super::*;

fn index(paths: &[&str]) -> (CopyIndex, Vec<FileId>) {
    let index = CopyIndex::default();
    let ids = {
        let mut inner = index.inner.lock().unwrap();
        paths.iter().map(|p| inner.id(Path::new(p))).collect()
    };
    (index, ids)
}

const A: &str = "/p/proj/aaaaaaaa-0000-0000-0000-000000000001.jsonl";
const B: &str = "/p/proj/bbbbbbbb-0000-0000-0000-000000000002.jsonl";
const A_SID: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const B_SID: &str = "bbbbbbbb-0000-0000-0000-000000000002";

#[test]
fn the_earliest_copy_owns_the_uuid_whatever_order_claims_come_in() {
    for a_first in [true, false] {
        let (index, ids) = index(&[A, B]);
        let (a, b) = (ids[0], ids[1]);
        if a_first {
            assert!(index.claim(a, "u1", Some(100), Some(A_SID), 0));
            assert!(!index.claim(b, "u1", Some(200), Some(B_SID), 0));
            assert!(index.take_displaced().is_empty());
        } else {
            assert!(index.claim(b, "u1", Some(200), Some(B_SID), 0));
            assert!(index.claim(a, "u1", Some(100), Some(A_SID), 0));
            assert_eq!(index.take_displaced(), vec![PathBuf::from(B)]);
        }
        assert_eq!(index.digest(a), None);
        assert!(index.digest(b).is_some());
    }
}

#[test]
fn a_tie_goes_to_the_file_named_by_the_line_session_then_the_smaller_path() {
    let (index, ids) = index(&[B, A]);
    // Same time, the line names A's session: A owns it although B claimed first.
    assert!(index.claim(ids[0], "u1", Some(100), Some(A_SID), 0));
    assert!(index.claim(ids[1], "u1", Some(100), Some(A_SID), 0));
    assert!(!index.claim(ids[0], "u1", Some(100), Some(A_SID), 0));
    // Same time, a session neither file is named by: the smaller path (A).
    assert!(index.claim(ids[0], "u2", Some(100), Some("other"), 0));
    assert!(index.claim(ids[1], "u2", Some(100), Some("other"), 0));
    // A missing timestamp loses to any timestamp.
    assert!(index.claim(ids[1], "u3", None, Some(A_SID), 0));
    assert!(index.claim(ids[0], "u3", Some(5), None, 0));
}

#[test]
fn only_a_file_first_line_with_a_uuid_claims_it() {
    let (index, ids) = index(&[A, B]);
    assert!(index.claim(ids[1], "u1", Some(100), Some(B_SID), 0));
    assert!(!index.claim(ids[0], "u1", Some(200), Some(A_SID), 0));
    // A's later, earlier-stamped line with the same uuid is a copy within A: no new claim.
    assert!(!index.claim(ids[0], "u1", Some(50), Some(A_SID), 0));
    assert!(index.take_displaced().is_empty());
}

/// A resume chain claimed newest first: each older file takes the uuid from the owner
/// before it, which is displaced and holds it as a copy from then on (its digest changes);
/// its own repeated line neither claims nor wins it back.
#[test]
fn a_beaten_owner_holds_the_uuid_as_a_copy_for_good() {
    const C: &str = "/p/proj/cccccccc-0000-0000-0000-000000000003.jsonl";
    let (index, ids) = index(&[A, B, C]);
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    assert!(index.claim(c, "u1", Some(300), None, 0));
    assert!(index.claim(c, "u2", Some(301), None, 0));
    assert_eq!(index.digest(c), None);
    assert!(index.claim(b, "u1", Some(200), None, 0));
    assert_eq!(index.take_displaced(), vec![PathBuf::from(C)]);
    let c_after_b = index.digest(c);
    assert!(c_after_b.is_some());
    assert!(index.claim(a, "u1", Some(100), None, 0));
    assert_eq!(index.take_displaced(), vec![PathBuf::from(B)]);
    // C's copies did not change (u1 was already another file's); B now holds one.
    assert_eq!(index.digest(c), c_after_b);
    assert_eq!(index.digest(b), c_after_b);
    assert!(!index.claim(c, "u1", Some(1), None, 0));
    assert!(!index.claim(b, "u1", Some(1), None, 0));
    assert!(index.claim(c, "u2", Some(1), None, 0));
    assert!(index.take_displaced().is_empty());
    assert_eq!(index.digest(a), None);
}

/// A 2.1.x `aside_question` agent starts with a copy of its parent's lines (same uuid,
/// timestamp and `sessionId`): the parent, named by the lines' session, owns them whichever
/// file is read first; the agent owns only its side question and answer.
#[test]
fn a_subagent_copy_of_its_parent_lines_belongs_to_the_parent() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects").join("-w");
    let sid = "aaaaaaaa-0000-4000-8000-00000000000a";
    let parent = proj.join(format!("{sid}.jsonl"));
    let agent = proj
        .join(sid)
        .join("subagents")
        .join("agent-aside_question-0a1b.jsonl");
    std::fs::create_dir_all(agent.parent().unwrap()).unwrap();
    let line = |uuid: &str, second: u32| {
        format!(
            "{{\"uuid\":\"{uuid}\",\"sessionId\":\"{sid}\",\"timestamp\":\"2026-04-27T13:00:{second:02}.000Z\"}}\n"
        )
    };
    std::fs::write(&parent, line("p1", 0) + &line("p2", 1) + &line("p3", 9)).unwrap();
    std::fs::write(&agent, line("p1", 0) + &line("p2", 1) + &line("s1", 5)).unwrap();
    let len = line("p1", 0).len() as u64;
    // The parsers' claims are those of lines read with the project (the compact table
    // answers), or, past them, of lines as if written since (the project is read whole
    // again first): the same answers.
    for (agent_first, read_before) in [(true, true), (false, true), (true, false)] {
        let index = CopyIndex::default();
        let (a, p) = if agent_first {
            let a = index.file(&agent);
            (a, index.file(&parent))
        } else {
            let p = index.file(&parent);
            (index.file(&agent), p)
        };
        let off = |i: u64| if read_before { i * len } else { 10 * len + i };
        let at = |s: u32| Some(1_777_294_800_000 + i64::from(s) * 1000);
        assert!(!index.claim(a, "p1", at(0), Some(sid), off(0)));
        assert!(!index.claim(a, "p2", at(1), Some(sid), off(1)));
        assert!(index.claim(a, "s1", at(5), Some(sid), off(2)));
        assert!(index.claim(p, "p1", at(0), Some(sid), off(0)));
        assert!(index.claim(p, "p3", at(9), Some(sid), off(2)));
        assert!(index.digest(a).is_some());
        assert_eq!(index.digest(p), None);
        // Reading the project (the claims of files not parsed yet) displaces nobody.
        assert!(index.take_displaced().is_empty());
        let inner = index.inner.lock().unwrap();
        // Compact: only the two uuids both files hold are listed.
        assert_eq!(inner.best[0].keys.len(), if read_before { 2 } else { 4 });
    }
}

/// Regression: a compact project (only its contested uuids listed) still sees a file
/// written after it was read take a uuid that only one file held: the earlier owner is
/// displaced, as when every claim was listed.
#[test]
fn a_file_written_after_its_project_was_read_takes_an_unlisted_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let proj = dir.path().join("projects").join("-w");
    std::fs::create_dir_all(&proj).unwrap();
    let (old, new) = (proj.join("b-old.jsonl"), proj.join("a-new.jsonl"));
    let line = |uuid: &str, second: u32| {
        format!("{{\"uuid\":\"{uuid}\",\"timestamp\":\"2026-04-27T13:00:{second:02}.000Z\"}}\n")
    };
    std::fs::write(&old, line("u1", 5) + &line("u2", 6)).unwrap();
    let index = CopyIndex::default();
    let o = index.file(&old);
    assert_eq!(index.inner.lock().unwrap().best[0].keys.len(), 0);
    let at = |s: u32| Some(1_777_294_800_000 + i64::from(s) * 1000);
    let len = line("u1", 5).len() as u64;
    assert!(index.claim(o, "u1", at(5), None, 0));
    assert!(index.claim(o, "u2", at(6), None, len));
    assert!(index.take_displaced().is_empty());
    // Written since: a copy of u1 with the same time and a smaller path wins it.
    std::fs::write(&new, line("u1", 5)).unwrap();
    let n = index.file(&new);
    assert!(index.claim(n, "u1", at(5), None, 0));
    assert_eq!(index.take_displaced(), vec![old.clone()]);
    assert!(index.digest(o).is_some());
    assert!(!index.claim(o, "u1", at(5), None, 0));
    assert!(index.claim(o, "u2", at(6), None, len));
    assert_eq!(index.inner.lock().unwrap().best[0].keys.len(), 2);
}

/// Regression: the frozen arrays and the recent claims answer as one table: a recent claim
/// on a frozen uuid replaces it, and freezing again keeps every uuid once, sorted.
#[test]
fn a_frozen_table_answers_like_the_claims_it_was_built_from() {
    let claim = |at, named, file| Claim { at, named, file };
    let mut t = Table::default();
    for k in [9u64, 3, 7, 1] {
        t.insert(k, claim(k as i64, k == 3, k as u32));
    }
    t.freeze();
    assert!(t.recent.is_empty());
    assert_eq!(t.keys, vec![1, 3, 7, 9]);
    assert_eq!(t.get(3), Some(claim(3, true, 3)));
    assert_eq!(t.get(4), None);
    t.insert(7, claim(-5, false, 2));
    t.insert(5, claim(5, true, 1));
    t.insert(10, claim(10, false, 0));
    assert_eq!(t.get(7), Some(claim(-5, false, 2)));
    t.freeze();
    assert_eq!(t.keys, vec![1, 3, 5, 7, 9, 10]);
    assert_eq!(t.get(7), Some(claim(-5, false, 2)));
    assert_eq!(t.get(5), Some(claim(5, true, 1)));
    assert_eq!(t.get(9), Some(claim(9, false, 9)));
    assert_eq!(t.get(10), Some(claim(10, false, 0)));
}

/// Regression: a project's files are read by blocks; a line across two blocks is one line,
/// and a last line without its newline (being written) is not read.
#[test]
fn complete_lines_by_block_cut_no_line_and_leave_the_partial_last_one() {
    let long = "x".repeat(READ_BLOCK + 10);
    let text = format!("a\n{long}\r\n\nb\npartial");
    let mut lines = Vec::new();
    let until = complete_lines(text.as_bytes(), |l, _| lines.push(l.to_vec()));
    assert_eq!(until, (text.len() - "partial".len()) as u64);
    let expected: Vec<Vec<u8>> = vec![b"a".to_vec(), long.into_bytes(), Vec::new(), b"b".to_vec()];
    assert_eq!(lines, expected);
}

#[test]
fn project_dir_of_every_layout() {
    let p = |s: &str| project_dir(Path::new(s)).map(|d| d.display().to_string());
    assert_eq!(p("/h/projects/x/s.jsonl").as_deref(), Some("/h/projects/x"));
    assert_eq!(
        p("/h/projects/x/agent-1.jsonl").as_deref(),
        Some("/h/projects/x")
    );
    assert_eq!(
        p("/h/projects/x/s/subagents/agent-1.jsonl").as_deref(),
        Some("/h/projects/x")
    );
    assert_eq!(
        p("/h/projects/x/s/subagents/workflows/r/agent-1.jsonl").as_deref(),
        Some("/h/projects/x")
    );
}
