//! Files, the editor and browse through actions, and the REST file routes, which never
//! leave the workspace.

mod common;
use common::*;
use serde_json::{json, Value};

struct Client {
    ws: Ws,
    cid: String,
}

impl Client {
    async fn new(server: &Server) -> Client {
        let cid = new_id();
        let ws = ws_ready(
            server.port,
            &format!("conversation_id={cid}&latest_event_id=-1"),
        )
        .await;
        Client { ws, cid }
    }

    async fn act(&mut self, action: Value) -> Value {
        act(&mut self.ws, &action).await
    }

    async fn edit(&mut self, args: Value) -> Value {
        self.act(json!({"action": "edit", "args": args})).await
    }
}

fn workspace(server: &Server, cid: &str) -> std::path::PathBuf {
    server.dir.join("store").join("workspaces").join(cid)
}

#[tokio::test]
async fn read_and_write_actions() {
    let server = Server::start();
    let mut c = Client::new(&server).await;
    let o = c.act(json!({"action": "write", "args": {"path": "deep/dir/notes.txt", "content": "one\ntwo\nthree\n"}})).await;
    assert_eq!(o["observation"], "write", "{o}");
    let path = workspace(&server, &c.cid).join("deep/dir/notes.txt");
    assert_eq!(o["extras"]["path"], path.display().to_string());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
    let o = c
        .act(json!({"action": "read", "args": {"path": path.display().to_string()}}))
        .await;
    assert_eq!(o["observation"], "read");
    assert_eq!(o["content"], "one\ntwo\nthree\n");
    assert_eq!(o["message"], format!("I read the file {}.", path.display()));
    let o = c
        .act(
            json!({"action": "read", "args": {"path": "deep/dir/notes.txt", "start": 1, "end": 2}}),
        )
        .await;
    assert_eq!(o["content"], "two\n");
    let o = c.act(json!({"action": "read", "args": {"path": "/workspace/deep/dir/notes.txt", "impl_source": "oh_aci", "view_range": [2, 3]}})).await;
    assert_eq!(
        o["content"]
            .as_str()
            .unwrap()
            .lines()
            .skip(1)
            .collect::<Vec<_>>(),
        ["     2\ttwo", "     3\tthree"],
        "{o}"
    );
    // Errors a model or a person can act on.
    let o = c
        .act(json!({"action": "read", "args": {"path": "missing.txt"}}))
        .await;
    assert_eq!(o["observation"], "error");
    assert!(
        o["content"].as_str().unwrap().contains("does not exist"),
        "{o}"
    );
    let o = c
        .act(json!({"action": "write", "args": {"path": "deep", "content": "x"}}))
        .await;
    assert_eq!(o["observation"], "error", "{o}");
    std::fs::write(
        workspace(&server, &c.cid).join("blob.bin"),
        [0u8, 159, 146, 150],
    )
    .unwrap();
    let o = c
        .act(json!({"action": "read", "args": {"path": "blob.bin"}}))
        .await;
    assert!(o["content"].as_str().unwrap().contains("binary"), "{o}");
}

#[tokio::test]
async fn every_editor_command_and_its_errors() {
    let server = Server::start();
    let mut c = Client::new(&server).await;
    let ws = workspace(&server, &c.cid);
    let file = ws.join("app.py").display().to_string();
    let o = c
        .edit(json!({"path": file, "command": "create", "file_text": "a = 1\nb = 2\nc = 3\n"}))
        .await;
    assert_eq!(o["observation"], "edit", "{o}");
    assert_eq!(o["extras"]["prev_exist"], false);
    assert_eq!(o["extras"]["new_content"], "a = 1\nb = 2\nc = 3\n");
    assert_eq!(o["extras"]["impl_source"], "oh_aci");
    let keys: Vec<&String> = o["extras"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "path",
            "prev_exist",
            "old_content",
            "new_content",
            "impl_source",
            "diff",
            "_diff_cache"
        ]
    );
    let o = c
        .edit(json!({"path": file, "command": "create", "file_text": "x"}))
        .await;
    assert!(
        o["content"].as_str().unwrap().contains("already exists"),
        "{o}"
    );
    let o = c.edit(json!({"path": file, "command": "str_replace", "old_str": "b = 2", "new_str": "b = 20"})).await;
    assert_eq!(o["observation"], "edit", "{o}");
    assert_eq!(o["extras"]["old_content"], "a = 1\nb = 2\nc = 3\n");
    assert_eq!(o["extras"]["new_content"], "a = 1\nb = 20\nc = 3\n");
    assert!(o["extras"]["diff"].as_str().unwrap().contains("+b = 20"));
    std::fs::write(ws.join("dup.py"), "x = 1\ny = 2\nx = 1\n").unwrap();
    let o = c
        .edit(
            json!({"path": "dup.py", "command": "str_replace", "old_str": "x = 1", "new_str": "z"}),
        )
        .await;
    let msg = o["content"].as_str().unwrap();
    assert!(
        msg.contains("Multiple occurrences") && msg.contains("[1, 3]"),
        "{o}"
    );
    let o = c
        .edit(json!({"path": file, "command": "str_replace", "old_str": "nope", "new_str": "z"}))
        .await;
    assert!(
        o["content"]
            .as_str()
            .unwrap()
            .contains("did not appear verbatim"),
        "{o}"
    );
    let o = c.edit(json!({"path": file, "command": "insert", "insert_line": 1, "new_str": "inserted = True"})).await;
    assert_eq!(
        o["extras"]["new_content"], "a = 1\ninserted = True\nb = 20\nc = 3\n",
        "{o}"
    );
    let o = c
        .edit(json!({"path": file, "command": "insert", "insert_line": 99, "new_str": "x"}))
        .await;
    assert!(
        o["content"].as_str().unwrap().contains("insert_line"),
        "{o}"
    );
    let o = c.edit(json!({"path": file, "command": "undo_edit"})).await;
    assert_eq!(
        std::fs::read_to_string(ws.join("app.py")).unwrap(),
        "a = 1\nb = 20\nc = 3\n",
        "{o}"
    );
    let o = c.edit(json!({"path": file, "command": "view"})).await;
    assert_eq!(o["observation"], "read");
    assert!(
        o["content"].as_str().unwrap().contains("     2\tb = 20"),
        "{o}"
    );
    std::fs::create_dir_all(ws.join("pkg/inner/deeper")).unwrap();
    std::fs::write(ws.join(".hidden"), "h").unwrap();
    let o = c
        .edit(json!({"path": ws.display().to_string(), "command": "view"}))
        .await;
    let listing = o["content"].as_str().unwrap();
    assert!(
        listing.contains("pkg/inner")
            && !listing.contains(".hidden")
            && !listing.contains("deeper"),
        "{listing}"
    );
    let o = c.edit(json!({"path": file, "command": "explode"})).await;
    assert_eq!(o["observation"], "error");
}

#[tokio::test]
async fn browse_fetches_a_local_page_as_text() {
    let server = Server::start();
    let page = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = page.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { axum::response::Html("<html><head><title>Local Page</title><style>p{}</style></head><body><h1>Hello</h1><p>Some <b>bold</b> text.</p><script>alert(1)</script></body></html>") }))
        .route("/missing", axum::routing::get(|| async { (axum::http::StatusCode::NOT_FOUND, "nope") }));
    tokio::spawn(async move { axum::serve(page, app).await.unwrap() });
    let mut c = Client::new(&server).await;
    let url = format!("http://127.0.0.1:{port}/");
    let o = c
        .act(json!({"action": "browse", "args": {"url": url}}))
        .await;
    assert_eq!(o["observation"], "browse", "{o}");
    assert_eq!(o["extras"]["url"], url);
    assert_eq!(o["extras"]["error"], false);
    let text = o["content"].as_str().unwrap();
    assert!(
        text.contains("Hello") && text.contains("**bold**") && !text.contains("alert"),
        "{text}"
    );
    assert_eq!(o["message"], format!("Visited {url}"));
    let o = c.act(json!({"action": "browse", "args": {"url": format!("http://127.0.0.1:{port}/missing")}})).await;
    assert_eq!(o["extras"]["error"], true);
    assert!(o["content"].as_str().unwrap().contains("404"), "{o}");
    for bad in ["file:///etc/passwd", "not a url"] {
        let o = c
            .act(json!({"action": "browse", "args": {"url": bad}}))
            .await;
        assert_eq!(o["extras"]["error"], true, "{bad}: {o}");
        assert!(!o["content"].as_str().unwrap().contains("root:"), "{o}");
    }
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    let r = http().get(server.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rest_file_routes_stay_inside_the_workspace() {
    let server = Server::start();
    let c = Client::new(&server).await;
    let cid = c.cid.clone();
    let ws = workspace(&server, &cid);
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::write(ws.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(ws.join("README.md"), "# hi\n").unwrap();
    std::fs::write(ws.join(".gitignore"), "ignored.log\n").unwrap();
    std::fs::write(ws.join("ignored.log"), "x").unwrap();
    std::os::unix::fs::symlink("/etc", ws.join("etc-link")).unwrap();
    let base = format!("/api/conversations/{cid}");
    let (s, files) = get(&server, &format!("{base}/list-files")).await;
    assert_eq!(s, 200);
    let files: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        files.contains(&"src/") && files.contains(&"README.md") && !files.contains(&"ignored.log"),
        "{files:?}"
    );
    let (s, f) = get(&server, &format!("{base}/list-files?path=src")).await;
    assert_eq!((s, f), (200, json!(["src/main.rs"])));
    let (s, f) = get(&server, &format!("{base}/select-file?file=src/main.rs")).await;
    assert_eq!((s, f), (200, json!({"code": "fn main() {}\n"})));
    for evil in [
        "../../../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "/etc/passwd",
        "etc-link/passwd",
        "src/../../x",
    ] {
        let (s, v) = get(&server, &format!("{base}/select-file?file={evil}")).await;
        assert!((400..500).contains(&s), "{evil}: {s} {v}");
        assert!(v["error"].is_string(), "{evil}: {v}");
        let (s, _) = get(&server, &format!("{base}/list-files?path={evil}")).await;
        assert!((400..500).contains(&s), "{evil}: {s}");
        let (s, _) = get(&server, &format!("{base}/git/diff?path={evil}")).await;
        assert!((400..500).contains(&s), "{evil}: {s}");
    }
    // Upload (multipart), then zip the workspace.
    let form = reqwest::multipart::Form::new()
        .part(
            "files",
            reqwest::multipart::Part::bytes(b"uploaded!".to_vec()).file_name("up.txt"),
        )
        .part(
            "files",
            reqwest::multipart::Part::bytes(b"evil".to_vec()).file_name("../../escape.txt"),
        );
    let r = http()
        .post(server.url(&format!("{base}/upload-files")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["uploaded_files"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["skipped_files"][0]["name"], "../../escape.txt", "{v}");
    assert_eq!(
        std::fs::read_to_string(ws.join("up.txt")).unwrap(),
        "uploaded!"
    );
    assert!(!server.dir.join("store").join("escape.txt").exists());
    let r = http()
        .get(server.url(&format!("{base}/zip-directory")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let bytes = r.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let names: Vec<String> = (0..zip.len())
        .map(|i| zip.by_index(i).unwrap().name().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with("src/main.rs")),
        "{names:?}"
    );
    assert!(!names.iter().any(|n| n.contains("passwd")), "{names:?}");
    // Not a git repository yet.
    let (s, v) = get(&server, &format!("{base}/git/changes")).await;
    assert_eq!((s, v), (404, json!({"error": "Not a git repository"})));
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(["-c", "user.email=a@b", "-c", "user.name=n"])
            .args(args)
            .current_dir(&ws)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&["add", "README.md"]);
    git(&["commit", "-qm", "init"]);
    std::fs::write(ws.join("README.md"), "# changed\n").unwrap();
    let (s, v) = get(&server, &format!("{base}/git/changes")).await;
    assert_eq!(s, 200);
    assert!(
        v.as_array()
            .unwrap()
            .contains(&json!({"status": "M", "path": "README.md"})),
        "{v}"
    );
    let (s, v) = get(&server, &format!("{base}/git/diff?path=README.md")).await;
    assert_eq!(
        (s, v),
        (
            200,
            json!({"modified": "# changed\n", "original": "# hi\n"})
        )
    );
}
