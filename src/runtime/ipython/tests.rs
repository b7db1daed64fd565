//! The kernel driven directly (a real `python3 -m ipykernel_launcher`).

use super::*;
use crate::events::ObservationKind;

fn cells(dir: &Path) -> IPython {
    let mut env = crate::runtime::child_env::from_server();
    env.push(("OPENHANDS_RUNTIME_ID".into(), "ipython-unit-test".into()));
    IPython::new(
        dir,
        env,
        Duration::from_secs(20),
        Duration::from_secs(10),
        SandboxPolicy::off(dir),
    )
}

fn cell(code: &str) -> IPythonRunCellArgs {
    serde_json::from_value(serde_json::json!({ "code": code })).unwrap()
}

#[tokio::test]
async fn variables_persist_and_errors_come_back_as_tracebacks() {
    let dir = tempfile::tempdir().unwrap();
    let py = cells(dir.path());
    let first = py.run(&cell("x = 41\nprint('hello')"), None, None).await;
    assert_eq!(first.content, "hello");
    let second = py.run(&cell("x + 1"), None, None).await;
    assert_eq!(second.content, "42");
    assert!(matches!(second.kind, ObservationKind::RunIpython(ref e) if e.code == "x + 1"));
    let err = py.run(&cell("1/0"), None, None).await;
    assert!(err.content.contains("ZeroDivisionError"), "{}", err.content);
    assert!(!err.content.contains('\x1b'), "{:?}", err.content);
    py.close();
}
