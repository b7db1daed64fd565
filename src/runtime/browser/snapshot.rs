//! The page as the model reads it: every element gets a `bid` attribute (as BrowserGym
//! marks them), and Chromium's accessibility tree is flattened to `[bid] role 'name'`
//! lines, bounded in size.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde_json::Value;

/// The attribute that carries an element's id.
pub const BID_ATTRIBUTE: &str = "bid";
/// At most this many lines of tree reach the model.
const MAX_LINES: usize = 2_000;
/// At most this many characters of tree reach the model.
const MAX_CHARS: usize = 60_000;
/// Names longer than this are cut.
const MAX_NAME: usize = 200;

/// JavaScript run in the page before each snapshot: gives every element of the document a
/// unique numeric `bid` (keeping the ones it already has), makes links and forms open in
/// the same tab, and returns the URL, title and focused element's id.
pub const MARK_ELEMENTS: &str = r#"(() => {
  const A = 'bid';
  const key = Symbol.for('openhands.bid.next');
  let next = window[key] || 0;
  const seen = new Set();
  const all = document.querySelectorAll('*');
  for (const el of all) {
    const b = el.getAttribute(A);
    if (b !== null && /^[0-9]+$/.test(b) && !seen.has(b)) { seen.add(b); if (+b >= next) next = +b + 1; }
  }
  const kept = new Set();
  for (const el of all) {
    const b = el.getAttribute(A);
    if (b !== null && seen.has(b) && !kept.has(b)) { kept.add(b); continue; }
    el.setAttribute(A, String(next++));
  }
  window[key] = next;
  for (const el of document.querySelectorAll('a[target], form[target], area[target]')) el.setAttribute('target', '_self');
  let f = document.activeElement;
  while (f && f.shadowRoot && f.shadowRoot.activeElement) f = f.shadowRoot.activeElement;
  const focused = f && f !== document.body && f.getAttribute ? (f.getAttribute(A) || '') : '';
  return { url: location.href, title: document.title, focused, ready: document.readyState };
})()"#;

/// The bids of the DOM snapshot's nodes, by backend node id.
pub fn bids_by_backend_id(snapshot: &Value) -> HashMap<i64, String> {
    let mut out = HashMap::new();
    let Some(strings) = snapshot.get("strings").and_then(Value::as_array) else {
        return out;
    };
    let string = |i: &Value| -> Option<&str> { strings.get(i.as_u64()? as usize)?.as_str() };
    let Some(documents) = snapshot.get("documents").and_then(Value::as_array) else {
        return out;
    };
    for doc in documents {
        let nodes = &doc["nodes"];
        let (Some(ids), Some(attributes)) = (
            nodes["backendNodeId"].as_array(),
            nodes["attributes"].as_array(),
        ) else {
            continue;
        };
        for (id, attrs) in ids.iter().zip(attributes) {
            let (Some(id), Some(attrs)) = (id.as_i64(), attrs.as_array()) else {
                continue;
            };
            for pair in attrs.chunks(2) {
                if let [name, value] = pair {
                    if string(name) == Some(BID_ATTRIBUTE) {
                        if let Some(v) = string(value) {
                            out.insert(id, v.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

/// Flattens `Accessibility.getFullAXTree`'s nodes to indented text lines.
pub fn flatten(nodes: &[Value], bids: &HashMap<i64, String>) -> String {
    let by_id: HashMap<&str, &Value> = nodes
        .iter()
        .filter_map(|n| Some((n.get("nodeId")?.as_str()?, n)))
        .collect();
    let mut out = Tree {
        text: String::new(),
        lines: 0,
        cut: 0,
    };
    for root in nodes.iter().filter(|n| {
        n.get("parentId")
            .is_none_or(|p| !by_id.contains_key(p.as_str().unwrap_or("")))
    }) {
        walk(root, &by_id, bids, 0, "", &mut out, 0);
    }
    if out.cut > 0 {
        let _ = write!(
            out.text,
            "[... {} more lines of the accessibility tree are not shown; scroll or follow links to see other parts]",
            out.cut
        );
    }
    out.text.trim_end().to_string()
}

struct Tree {
    text: String,
    lines: usize,
    cut: usize,
}

fn value_str<'a>(node: &'a Value, key: &str) -> &'a str {
    node.get(key)
        .and_then(|v| v.get("value"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn walk(
    node: &Value,
    by_id: &HashMap<&str, &Value>,
    bids: &HashMap<i64, String>,
    depth: usize,
    parent_name: &str,
    out: &mut Tree,
    guard: usize,
) {
    if guard > 512 {
        return;
    }
    let ignored = node
        .get("ignored")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let role = value_str(node, "role");
    let name = value_str(node, "name").trim();
    let silent = ignored
        || role == "InlineTextBox"
        || role == "LineBreak"
        || (matches!(role, "generic" | "none" | "") && name.is_empty())
        || (role == "StaticText" && (name.is_empty() || name == parent_name));
    let mut child_depth = depth;
    let mut own_name = parent_name;
    if !silent {
        if out.lines >= MAX_LINES || out.text.len() >= MAX_CHARS {
            out.cut += 1;
        } else {
            out.lines += 1;
            let _ = write!(out.text, "{}", "\t".repeat(depth));
            if let Some(bid) = node
                .get("backendDOMNodeId")
                .and_then(Value::as_i64)
                .and_then(|id| bids.get(&id))
            {
                let _ = write!(out.text, "[{bid}] ");
            }
            let _ = write!(out.text, "{role} {}", quote(name));
            for property in properties(node) {
                let _ = write!(out.text, ", {property}");
            }
            out.text.push('\n');
        }
        child_depth = depth + 1;
        own_name = name;
    }
    for child in node
        .get("childIds")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|id| by_id.get(id.as_str()?))
    {
        walk(child, by_id, bids, child_depth, own_name, out, guard + 1);
    }
}

/// A name in Python's repr style: single quotes unless it holds one.
fn quote(full: &str) -> String {
    let mut name: String = full.chars().take(MAX_NAME).collect();
    if name.len() < full.len() {
        name.push('…');
    }
    let name = name.replace('\n', " ");
    if name.contains('\'') && !name.contains('"') {
        format!("\"{name}\"")
    } else {
        format!("'{}'", name.replace('\'', "\\'"))
    }
}

/// The node's states worth telling: value, focused, required, checked, disabled, …
fn properties(node: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let value = value_str(node, "value");
    if !value.is_empty() {
        out.push(format!("value={}", quote(value)));
    }
    for p in node
        .get("properties")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        let v = &p["value"]["value"];
        match name {
            "focused" | "required" | "disabled" | "multiselectable" | "readonly"
                if v.as_bool() == Some(true) =>
            {
                out.push(name.to_string())
            }
            "checked" | "pressed" | "selected" | "expanded" => match v {
                Value::Bool(b) => out.push(format!("{name}={}", if *b { "True" } else { "False" })),
                Value::String(s) => out.push(format!("{name}='{s}'")),
                _ => {}
            },
            "level" | "valuemin" | "valuemax" => {
                if let Some(n) = v.as_f64() {
                    out.push(format!("{name}={n}"));
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_tree_lists_bids_roles_names_and_states() {
        let nodes = vec![
            json!({"nodeId":"1","role":{"value":"RootWebArea"},"name":{"value":"Form"},"childIds":["2","3"],"backendDOMNodeId":1}),
            json!({"nodeId":"2","parentId":"1","role":{"value":"generic"},"name":{"value":""},"childIds":["4"],"backendDOMNodeId":5}),
            json!({"nodeId":"4","parentId":"2","role":{"value":"textbox"},"name":{"value":"Name"},"value":{"value":"Ada"},"properties":[{"name":"focused","value":{"value":true}},{"name":"required","value":{"value":true}}],"childIds":[],"backendDOMNodeId":7}),
            json!({"nodeId":"3","parentId":"1","role":{"value":"button"},"name":{"value":"Send"},"childIds":["5"],"backendDOMNodeId":9}),
            json!({"nodeId":"5","parentId":"3","role":{"value":"StaticText"},"name":{"value":"Send"},"childIds":[]}),
        ];
        let bids = HashMap::from([(7, "12".to_string()), (9, "13".to_string())]);
        assert_eq!(
            flatten(&nodes, &bids),
            "RootWebArea 'Form'\n\t[12] textbox 'Name', value='Ada', focused, required\n\t[13] button 'Send'"
        );
    }

    #[test]
    fn a_huge_tree_is_cut_and_says_so() {
        let mut nodes = vec![
            json!({"nodeId":"r","role":{"value":"RootWebArea"},"name":{"value":"x"},"childIds":(0..5000).map(|i| format!("n{i}")).collect::<Vec<_>>()}),
        ];
        for i in 0..5000 {
            nodes.push(json!({"nodeId":format!("n{i}"),"parentId":"r","role":{"value":"link"},"name":{"value":format!("link {i}")}}));
        }
        let text = flatten(&nodes, &HashMap::new());
        assert!(text.lines().count() <= MAX_LINES + 1);
        assert!(text.ends_with("parts]"), "{}", &text[text.len() - 200..]);
        assert!(text.contains("3001 more lines"));
    }
}
