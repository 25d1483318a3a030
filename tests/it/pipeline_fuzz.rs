//! The bad-input harness (TARGETS.md R3) at test size: valid frames interleaved with every kind
//! of bad input; every frame's outcome is its expected one, every valid session is in the ledger.

use nex_bench::fuzz::{FuzzSpec, run};

#[test]
fn every_bad_frame_rejected_with_its_code_and_every_valid_frame_committed() {
    let spec = FuzzSpec {
        seed: 7,
        frames: 20_000,
        // Debug builds inflate slowly: a lower limit keeps each bomb's work small (the bomb
        // still inflates about 1000:1, far past it).
        max_inflated_bytes: 32 * 1024,
        ..FuzzSpec::default()
    };
    let r = run(&spec).expect("the run ends normally");
    eprintln!("fuzz: {:.1} s, {:.0} frames/s", r.secs, r.frames_per_sec);
    assert!(r.frames >= spec.frames);
    assert_eq!(
        (r.mismatches, &r.mismatch_samples),
        (0, &Vec::<String>::new()),
        "per-frame outcomes"
    );
    assert_eq!(r.rejected, r.expected_rejects, "rejects by code");
    assert_eq!(r.ledger_sessions, r.expected_sessions);
    assert!(r.completed, "the run ends on its run.complete");
    assert_eq!(r.seq_anomalies, 0);
    assert!(
        r.expected_sessions > 1000,
        "valid sessions: {}",
        r.expected_sessions
    );
    for code in [
        "frame_too_large",
        "frame_invalid_utf8",
        "frame_json_invalid",
        "frame_schema_invalid",
        "frame_type_unknown",
        "frame_run_id_mismatch",
        "chunk_payload_decode_failed",
        "chunk_payload_too_large",
        "chunk_total_mismatch",
        "chunk_index_out_of_range",
        "chunk_encoding_mismatch",
        "idempotency_key_payload_mismatch",
    ] {
        assert!(
            r.expected_rejects.get(code).copied().unwrap_or(0) > 0,
            "{code} generated"
        );
    }
    assert!(r.is_clean());
}
