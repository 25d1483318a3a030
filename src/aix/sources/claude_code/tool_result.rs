//! What of a Claude Code tool result is stored: its text once, and only the fields of the
//! line's `toolUseResult` that the text and the call's input do not already hold.

use serde_json::{Map, Value};

/// A call's `result_json`: the result's `content` as written (the one place its text is
/// stored), and the line's `toolUseResult` without the top-level string fields that repeat
/// either that text (Bash `stdout`, a Task's `result`) or one of the call's input strings
/// (Edit `oldString`/`newString`, Write `content`, `filePath`); each removed field is named in
/// `toolUseResultFrom` with where its value is: `"content"` or `"params.<key>"`
/// (`toolUseResultFrom: "content"` alone: the whole `toolUseResult` was that text).
pub(super) fn result_json(content: Value, tur: Option<Value>, params: Option<&Value>) -> Value {
    let mut result = Map::new();
    let mut from = Map::new();
    let tur = tur.map(|tur| match tur {
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .filter(|(key, value)| {
                    let Some(text) = value.as_str().filter(|t| !t.is_empty()) else {
                        return true;
                    };
                    let place = if content.as_str() == Some(text) {
                        Some("content".to_owned())
                    } else {
                        params
                            .and_then(Value::as_object)
                            .and_then(|p| p.iter().find(|(_, v)| v.as_str() == Some(text)))
                            .map(|(k, _)| format!("params.{k}"))
                    };
                    match place {
                        Some(place) => {
                            from.insert(key.clone(), Value::String(place));
                            false
                        }
                        None => true,
                    }
                })
                .collect(),
        ),
        other => other,
    });
    // A `toolUseResult` that is the result's text itself (old error results) is not kept twice.
    let whole_text = tur.as_ref().is_some_and(|t| {
        t.as_str()
            .is_some_and(|t| !t.is_empty() && content.as_str() == Some(t))
    });
    result.insert("content".into(), content);
    if whole_text {
        result.insert("toolUseResultFrom".into(), Value::from("content"));
    } else if let Some(tur) = tur {
        result.insert("toolUseResult".into(), tur);
        if !from.is_empty() {
            result.insert("toolUseResultFrom".into(), Value::Object(from));
        }
    }
    Value::Object(result)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn result_json_drops_tool_use_result_strings_that_repeat_the_text_or_the_input() {
        let params = json!({"file_path": "/a.rs", "old_string": "x", "new_string": "y"});
        let tur = json!({"filePath": "/a.rs", "oldString": "x", "newString": "y",
            "originalFile": "x\n", "stdout": "done", "stderr": "", "interrupted": false});
        assert_eq!(
            result_json(json!("done"), Some(tur), Some(&params)),
            json!({"content": "done",
                "toolUseResult": {"originalFile": "x\n", "stderr": "", "interrupted": false},
                "toolUseResultFrom": {"filePath": "params.file_path", "oldString": "params.old_string",
                    "newString": "params.new_string", "stdout": "content"}})
        );
    }

    #[test]
    fn result_json_keeps_what_only_it_holds() {
        // Text blocks are not matched as a whole string; a string toolUseResult that differs stays.
        let content = json!([{"type": "text", "text": "ok"}]);
        assert_eq!(
            result_json(content.clone(), Some(json!({"stdout": "ok"})), None),
            json!({"content": content, "toolUseResult": {"stdout": "ok"}})
        );
        assert_eq!(
            result_json(json!("Error: no"), Some(json!("Error: no")), None),
            json!({"content": "Error: no", "toolUseResultFrom": "content"})
        );
        assert_eq!(
            result_json(json!("Error: no"), Some(json!("Error: other")), None),
            json!({"content": "Error: no", "toolUseResult": "Error: other"})
        );
        assert_eq!(result_json(json!("a"), None, None), json!({"content": "a"}));
    }
}
