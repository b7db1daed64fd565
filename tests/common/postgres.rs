//! A real PostgreSQL server for tests: `initdb` into a temporary directory, `postgres`
//! listening only on a Unix socket in that directory, run as an unprivileged user when
//! the tests run as root (PostgreSQL refuses to run as root).
//!
//! [`Postgres::shared`] starts one server per test binary; each test takes its own
//! database from it with [`Postgres::fresh_database`]. A test that stops and restarts
//! the server starts its own with [`Postgres::start`]. The server stops, and its
//! directory is removed, when the test process exits (even on a panic or a kill): a
//! small shell keeps it and stops it once its standard input (held by the test process)
//! closes.
//!
//! The benchmark program includes this file too (so it uses no test-only crate).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The port names the socket file (`.s.PGSQL.<port>`); nothing listens on TCP.
const PORT: u16 = 5432;

pub struct Postgres {
    /// Holds the data directory and the socket.
    base: PathBuf,
    bin: PathBuf,
    /// The user the server runs as, when the tests run as root.
    run_as: Option<String>,
    keeper: Mutex<Option<Child>>,
}

static SHARED: OnceLock<Postgres> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// The directory holding `initdb`, `postgres`, `pg_isready` and `createdb`: beside
/// `initdb` on PATH, else Debian's newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() {
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                return real.parent().expect("initdb's directory").to_path_buf();
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (apt-get install -y postgresql)")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}

/// The unprivileged user to run the server as when we are root.
fn unprivileged_user() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let exists = |u: &str| {
        Command::new("id")
            .arg(u)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    Some(
        if exists("postgres") {
            "postgres"
        } else {
            "nobody"
        }
        .to_string(),
    )
}

fn user_ids(user: &str) -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id").args([flag, user]).output().expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("numeric id")
    };
    (id("-u"), id("-g"))
}

impl Postgres {
    /// The server shared by the tests of this binary.
    pub fn shared() -> &'static Postgres {
        SHARED.get_or_init(Postgres::start)
    }

    /// A new server of its own (for tests that stop and restart it).
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let run_as = unprivileged_user();
        let base = std::env::temp_dir().join(format!("oh-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&base).expect("create the server's directory");
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user);
            std::os::unix::fs::chown(&base, Some(uid), Some(gid)).expect("chown the base");
        }
        let pg = Postgres {
            base,
            bin,
            run_as,
            keeper: Mutex::new(None),
        };
        let data = pg.data_dir();
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ])
            .args(["--no-sync", "--no-instructions"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.run();
        pg
    }

    fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    /// The socket directory (the `host` of a URL).
    pub fn socket_dir(&self) -> &Path {
        &self.base
    }

    /// A PostgreSQL program of this installation, run as the server's user.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    /// Starts the server under its keeper shell and waits until it accepts connections.
    fn run(&self) {
        let script = r#"
"$1/postgres" -D "$2/data" -k "$2" -p "$3" -c listen_addresses='' -c max_connections=200 \
    >>"$2/postgres.log" 2>&1 &
pid=$!
read cmd
kill -INT $pid
wait $pid
[ "$cmd" = keep ] || rm -rf "$2"
"#;
        let mut sh = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "sh", "-c", script, "keeper"]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", script, "keeper"]);
                c
            }
        };
        let child = sh
            .arg(&self.bin)
            .arg(&self.base)
            .arg(PORT.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start postgres");
        *self.keeper.lock().unwrap() = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .arg("-h")
                .arg(&self.base)
                .args(["-p", &PORT.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "postgres did not start: {}",
                std::fs::read_to_string(self.base.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (fast shutdown), keeping its data for [`Postgres::restart`].
    pub fn stop(&self) {
        let Some(mut keeper) = self.keeper.lock().unwrap().take() else {
            return;
        };
        if let Some(stdin) = keeper.stdin.as_mut() {
            let _ = stdin.write_all(b"keep\n");
        }
        let _ = keeper.wait();
    }

    /// Starts the stopped server again on the same data and socket.
    pub fn restart(&self) {
        self.run();
    }

    /// Creates an empty database and returns its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.base)
            .args(["-p", &PORT.to_string(), "-U", "postgres", &name])
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgres://postgres@/{name}?host={}&port={PORT}",
            self.base.display()
        )
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Closing the keeper's input stops the server and removes its directory.
        if let Some(mut keeper) = self.keeper.lock().unwrap().take() {
            drop(keeper.stdin.take());
            let _ = keeper.wait();
        }
    }
}
