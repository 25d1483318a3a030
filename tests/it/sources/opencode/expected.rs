//! The exact items of the main fixture (`fixture::main_dir`), fingerprints blanked.

use serde_json::{Value, json};

use super::fixture::t;

pub fn expected_a(task_status: &str) -> Value {
    let mut task = json!({
        "sourceToolCallId": "call_task", "sourceTurnId": "msg_a1", "sourceMessageId": "msg_a2",
        "toolName": "task",
        "paramsJson": {"description": "Check docs", "prompt": "Check the docs for parse().",
                       "subagent_type": "general"},
        "status": task_status, "spawnedSourceSessionId": "ses_c",
        "startedAtMs": t(5), "completedAtMs": t(8), "sequence": 1
    });
    match task_status {
        "completed" => task["resultJson"] = json!("Docs are fine."),
        _ => task["error"] = json!("aborted by user"),
    }
    json!({
        "sourceProvider": "opencode", "sourceSessionId": "ses_a",
        "sourceSessionFingerprint": "<fp>",
        "session": {
            "createdAtMs": t(0), "updatedAtMs": t(30), "model": "claude-opus-4",
            "provider": "anthropic", "workspacePath": "/work/oc",
            "metadata": {"title": "Fix the parser", "version": "1.2.3", "projectId": "prj1",
                         "slug": "calm-river"}
        },
        "turns": [
            {"sourceTurnId": "msg_a1", "startedAtMs": t(1), "completedAtMs": t(9),
             "model": "claude-sonnet-4", "provider": "anthropic",
             "inputTokens": 100, "outputTokens": 50, "cachedInputTokens": 1000,
             "cacheWriteTokens": 200, "reasoningTokens": 10, "totalTokens": 1360,
             "responseMessageSourceId": "msg_a2", "queryMessageSourceIds": ["msg_a1"]},
            {"sourceTurnId": "msg_a3", "parentSourceTurnId": "msg_a1", "startedAtMs": t(20),
             "completedAtMs": t(25), "model": "claude-opus-4", "provider": "anthropic",
             "inputTokens": 300, "outputTokens": 20, "cachedInputTokens": 2000,
             "cacheWriteTokens": 0, "reasoningTokens": 0, "totalTokens": 2320,
             "responseMessageSourceId": "msg_a4", "queryMessageSourceIds": ["msg_a3"]}
        ],
        "messages": [
            {"sourceMessageId": "msg_a1", "sourceTurnId": "msg_a1", "role": "user",
             "content": "Fix the parser bug.", "sequence": 0, "createdAtMs": t(1),
             "metadataJson": {"agent": "build", "modelID": "claude-sonnet-4",
                              "providerID": "anthropic"}},
            {"sourceMessageId": "msg_a2", "sourceTurnId": "msg_a1", "role": "assistant",
             "content": "Fixed; docs checked.", "sequence": 1, "createdAtMs": t(2),
             "thinking": "Look at parse() first.",
             "metadataJson": {"agent": "build", "mode": "build", "modelID": "claude-sonnet-4",
                              "providerID": "anthropic", "finish": "tool-calls",
                              "parentID": "msg_a1", "cost": 0.012}},
            {"sourceMessageId": "msg_a3", "sourceTurnId": "msg_a3", "role": "user",
             "content": "Now run the tests.", "sequence": 2, "createdAtMs": t(20),
             "metadataJson": {"agent": "build", "modelID": "claude-sonnet-4",
                              "providerID": "anthropic"}},
            {"sourceMessageId": "msg_a4", "sourceTurnId": "msg_a3", "role": "assistant",
             "content": "One test fails.", "sequence": 3, "createdAtMs": t(21),
             "metadataJson": {"modelID": "claude-opus-4", "providerID": "anthropic",
                              "finish": "stop", "parentID": "msg_a3", "cost": 0.03}}
        ],
        "toolCalls": [
            {"sourceToolCallId": "call_read", "sourceTurnId": "msg_a1",
             "sourceMessageId": "msg_a2", "toolName": "read",
             "paramsJson": {"filePath": "/work/oc/parse.rs"}, "resultJson": "fn parse() {}",
             "status": "completed", "startedAtMs": t(3), "completedAtMs": t(4), "sequence": 0},
            task,
            {"sourceToolCallId": "call_bash", "sourceTurnId": "msg_a3",
             "sourceMessageId": "msg_a4", "toolName": "bash",
             "paramsJson": {"command": "cargo test"}, "status": "failed",
             "startedAtMs": t(22), "completedAtMs": t(23), "sequence": 2,
             "error": "exit status 101"}
        ]
    })
}

pub fn expected_c(task_status: &str) -> Value {
    json!({
        "sourceProvider": "opencode", "sourceSessionId": "ses_c",
        "sourceSessionFingerprint": "<fp>",
        "session": {
            "createdAtMs": t(5), "updatedAtMs": t(8), "model": "gpt-5", "provider": "openai",
            "workspacePath": "/work/oc", "isSubagent": true, "parentSourceSessionId": "ses_a",
            "spawnToolCallId": "call_task", "taskDescription": "Check docs",
            "taskStatus": task_status,
            "metadata": {"title": "Check docs (@general subagent)", "version": "1.2.3",
                         "projectId": "prj1", "slug": "brave-owl"}
        },
        "turns": [
            {"sourceTurnId": "msg_c1", "startedAtMs": t(5), "completedAtMs": t(7),
             "model": "gpt-5", "provider": "openai", "inputTokens": 40, "outputTokens": 8,
             "cachedInputTokens": 0, "cacheWriteTokens": 0, "reasoningTokens": 0,
             "totalTokens": 48, "responseMessageSourceId": "msg_c2",
             "queryMessageSourceIds": ["msg_c1"]}
        ],
        "messages": [
            {"sourceMessageId": "msg_c1", "sourceTurnId": "msg_c1", "role": "user",
             "content": "Check the docs for parse().", "sequence": 0, "createdAtMs": t(5),
             "metadataJson": {"agent": "general", "modelID": "gpt-5", "providerID": "openai"}},
            {"sourceMessageId": "msg_c2", "sourceTurnId": "msg_c1", "role": "assistant",
             "content": "Docs are fine.", "sequence": 1, "createdAtMs": t(6),
             "metadataJson": {"modelID": "gpt-5", "providerID": "openai",
                              "parentID": "msg_c1"}}
        ]
    })
}

pub fn expected_d() -> Value {
    json!({
        "sourceProvider": "opencode", "sourceSessionId": "ses_d",
        "sourceSessionFingerprint": "<fp>",
        "session": {
            "createdAtMs": t(40), "updatedAtMs": t(45), "workspacePath": "/work/oc",
            "metadata": {"title": "Both places", "version": "1.2.3", "projectId": "prj1"}
        },
        "turns": [
            {"sourceTurnId": "msg_d1", "startedAtMs": t(41), "completedAtMs": t(43),
             "responseMessageSourceId": "msg_d2", "queryMessageSourceIds": ["msg_d1"]}
        ],
        "messages": [
            {"sourceMessageId": "msg_d1", "sourceTurnId": "msg_d1", "role": "user",
             "content": "Which one wins?", "sequence": 0, "createdAtMs": t(41)},
            {"sourceMessageId": "msg_d2", "sourceTurnId": "msg_d1", "role": "assistant",
             "content": "The database.", "sequence": 1, "createdAtMs": t(42),
             "metadataJson": {"parentID": "msg_d1"}}
        ]
    })
}

pub fn expected_j(content: &str) -> Value {
    json!({
        "sourceProvider": "opencode", "sourceSessionId": "ses_j",
        "sourceSessionFingerprint": "<fp>",
        "session": {
            "createdAtMs": t(-100), "updatedAtMs": t(-90), "model": "claude-3-5-sonnet",
            "provider": "anthropic", "workspacePath": "/work/legacy",
            "metadata": {"title": "Legacy chat", "version": "1.1.10", "projectId": "prj1"}
        },
        "turns": [
            {"sourceTurnId": "msg_j1", "startedAtMs": t(-99), "completedAtMs": t(-95),
             "model": "claude-3-5-sonnet", "provider": "anthropic", "inputTokens": 12,
             "outputTokens": 34, "cachedInputTokens": 5, "cacheWriteTokens": 6,
             "reasoningTokens": 0, "totalTokens": 57, "responseMessageSourceId": "msg_j2",
             "queryMessageSourceIds": ["msg_j1"]}
        ],
        "messages": [
            {"sourceMessageId": "msg_j1", "sourceTurnId": "msg_j1", "role": "user",
             "content": "Hello legacy", "sequence": 0, "createdAtMs": t(-99)},
            {"sourceMessageId": "msg_j2", "sourceTurnId": "msg_j1", "role": "assistant",
             "content": content, "thinking": "Searching.", "sequence": 1,
             "createdAtMs": t(-98),
             "metadataJson": {"modelID": "claude-3-5-sonnet", "providerID": "anthropic",
                              "parentID": "msg_j1", "cost": 0}}
        ],
        "toolCalls": [
            {"sourceToolCallId": "call_glob", "sourceTurnId": "msg_j1",
             "sourceMessageId": "msg_j2", "toolName": "glob", "paramsJson": {"pattern": "*.rs"},
             "resultJson": "a.rs\nb.rs\nc.rs", "status": "completed", "startedAtMs": t(-97),
             "completedAtMs": t(-96), "sequence": 0},
            {"sourceToolCallId": "call_jtask", "sourceTurnId": "msg_j1",
             "sourceMessageId": "msg_j2", "toolName": "task",
             "paramsJson": {"description": "Find files"}, "resultJson": "3 files.",
             "status": "completed", "spawnedSourceSessionId": "ses_k", "startedAtMs": t(-97),
             "completedAtMs": t(-96), "sequence": 1}
        ]
    })
}

pub fn expected_k() -> Value {
    json!({
        "sourceProvider": "opencode", "sourceSessionId": "ses_k",
        "sourceSessionFingerprint": "<fp>",
        "session": {
            "createdAtMs": t(-97), "updatedAtMs": t(-96), "workspacePath": "/work/legacy",
            "isSubagent": true, "parentSourceSessionId": "ses_j",
            "spawnToolCallId": "call_jtask", "taskDescription": "Find files",
            "taskStatus": "completed",
            "metadata": {"title": "Legacy helper", "version": "1.1.10", "projectId": "prj1"}
        },
        "turns": [
            {"sourceTurnId": "msg_k1", "startedAtMs": t(-97), "completedAtMs": t(-96),
             "responseMessageSourceId": "msg_k2", "queryMessageSourceIds": ["msg_k1"]}
        ],
        "messages": [
            {"sourceMessageId": "msg_k1", "sourceTurnId": "msg_k1", "role": "user",
             "content": "Glob for rust files.", "sequence": 0, "createdAtMs": t(-97)},
            {"sourceMessageId": "msg_k2", "sourceTurnId": "msg_k1", "role": "assistant",
             "content": "3 files.", "sequence": 1, "createdAtMs": t(-96)}
        ]
    })
}
