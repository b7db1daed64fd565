//! The local runtime: executes actions on this machine, as OpenHands' "local" runtime
//! does: a persistent shell, files and the editor, and web pages.

pub mod browse;
pub mod browser;
pub mod child_env;
pub mod editor;
pub mod ipython;
pub mod microagents;
pub mod output_tap;
mod process;
pub mod repository;
pub mod sandbox;
pub mod shell;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

use crate::events::{
    Action, BrowseExtras, CmdOutputExtras, CmdOutputMetadata, CmdRunArgs, FileEditArgs,
    FileEditExtras, FileReadExtras, FileWriteExtras, Observation, ObservationKind,
};
use editor::Editor;
use shell::{Ended, Input, Shell};

/// How the runtime behaves.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Default hard timeout of a command (`[sandbox] timeout`).
    pub default_timeout: Duration,
    /// A command that prints nothing for this long returns, still running.
    pub no_change_timeout: Duration,
    pub browse: browse::BrowseLimits,
    /// The interactive browser, or why there is none (said to whoever asks for it).
    pub browser: Result<browser::BrowserConfig, String>,
    /// Extra environment for the shell (`[sandbox] runtime_startup_env_vars`).
    pub env: Vec<(String, String)>,
    /// The user's git provider tokens, for cloning from their hosts.
    pub git_tokens: Vec<crate::provider_tokens::ProviderToken>,
    /// What the conversation's processes and file operations may touch.
    pub sandbox: sandbox::SandboxPolicy,
}

/// Facts about the machine reported in command metadata.
#[derive(Debug, Clone, Default)]
struct HostInfo {
    username: Option<String>,
    hostname: Option<String>,
    python: Option<String>,
}

impl HostInfo {
    /// The facts, probed once per process (the probe runs a program).
    fn get() -> Self {
        static HOST: std::sync::OnceLock<HostInfo> = std::sync::OnceLock::new();
        HOST.get_or_init(HostInfo::probe).clone()
    }

    fn probe() -> Self {
        let username = std::env::var("USER").ok().or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        });
        let hostname = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok());
        let python = std::process::Command::new("sh")
            .args(["-c", "command -v python3 || command -v python"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|p| !p.is_empty());
        HostInfo {
            username,
            hostname,
            python,
        }
    }
}

/// Runs a conversation's actions in its workspace.
pub struct LocalRuntime {
    /// Marks every process this runtime starts (see [`child_env::MARKER`]).
    id: String,
    workspace: PathBuf,
    config: RuntimeConfig,
    /// The current shell, started on first use and again after it exits.
    shell: std::sync::Mutex<Option<Arc<Shell>>>,
    /// Held while a shell is looked up or started, so only one starts at a time.
    starting: Mutex<()>,
    editor: Mutex<Editor>,
    /// Python cells (the kernel starts with the first one).
    ipython: ipython::IPython,
    http: reqwest::Client,
    host: HostInfo,
    /// The interactive browser (started at its first action), or why there is none.
    browser: Result<browser::Browser, String>,
    /// Where a running command's or cell's output goes as it is produced, if anywhere.
    tap: std::sync::OnceLock<Arc<dyn output_tap::OutputTap>>,
}

impl LocalRuntime {
    /// A runtime for `workspace` (created if missing). The shell starts on first use.
    pub fn new(workspace: &Path, config: RuntimeConfig) -> Self {
        let _ = std::fs::create_dir_all(workspace);
        let http = reqwest::Client::builder()
            .user_agent(concat!("openhands-server/", env!("CARGO_PKG_VERSION")))
            .timeout(config.browse.timeout)
            .build()
            .unwrap_or_default();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut config = config;
        config.env.push((child_env::MARKER.into(), id.clone()));
        let mut kernel_env = child_env::from_server();
        kernel_env.extend(config.env.iter().cloned());
        let ipython = ipython::IPython::new(
            workspace,
            kernel_env,
            config.default_timeout,
            config.no_change_timeout,
            config.sandbox.clone(),
        );
        let browser = config
            .browser
            .clone()
            .map(|c| browser::Browser::new(workspace, c));
        LocalRuntime {
            id,
            workspace: workspace.to_path_buf(),
            config,
            shell: std::sync::Mutex::new(None),
            starting: Mutex::new(()),
            editor: Mutex::new(Editor::default()),
            ipython,
            http,
            host: HostInfo::get(),
            browser,
            tap: std::sync::OnceLock::new(),
        }
    }

    /// Gives commands' and cells' output to `tap` as it is produced (set once; later
    /// calls are ignored).
    pub fn set_output_tap(&self, tap: Arc<dyn output_tap::OutputTap>) {
        let _ = self.tap.set(tap);
    }

    fn tap(&self) -> Option<&dyn output_tap::OutputTap> {
        self.tap.get().map(|t| &**t as &dyn output_tap::OutputTap)
    }

    fn current_shell(&self) -> Option<Arc<Shell>> {
        self.shell.lock().ok().and_then(|s| s.clone())
    }

    /// The live shell, started if there is none or the last one exited; true when it
    /// replaced one that had exited.
    async fn shell(&self) -> Result<(Arc<Shell>, bool), shell::ShellError> {
        let _one_at_a_time = self.starting.lock().await;
        let old = self.current_shell();
        if let Some(s) = old.as_ref().filter(|s| !s.has_exited()) {
            return Ok((s.clone(), false));
        }
        if let Some(dead) = &old {
            // Whatever the old shell left running goes with it.
            dead.kill_all();
        }
        let prepared = self
            .config
            .sandbox
            .prepare()
            .map_err(|e| shell::ShellError::Spawn(e.to_string()))?;
        let fresh = Shell::start(
            &self.workspace,
            self.config.no_change_timeout,
            &self.config.env,
            prepared,
        )
        .await?;
        if let Ok(mut slot) = self.shell.lock() {
            *slot = Some(fresh.clone());
        }
        Ok((fresh, old.is_some()))
    }

    /// The sandbox policy of this runtime's processes and file operations.
    pub fn sandbox(&self) -> &sandbox::SandboxPolicy {
        &self.config.sandbox
    }

    /// Makes `cmd` a process of this runtime: the agent's environment is the caller's
    /// business; this adds the runtime's marker and confines the process with the
    /// conversation's sandbox (for a `tokio::process::Command`, pass `as_std_mut()`).
    pub fn confine(&self, cmd: &mut std::process::Command) -> Result<(), sandbox::SandboxError> {
        cmd.env(child_env::MARKER, &self.id);
        self.config.sandbox.prepare()?.apply_to(cmd);
        Ok(())
    }

    /// The error observation for a file operation the sandbox refuses on its resolved
    /// path, if it does.
    fn denial(&self, path: &Path, access: sandbox::Access) -> Option<Observation> {
        self.config
            .sandbox
            .check(path, access)
            .err()
            .map(|denied| Observation::error(denied.to_string(), ""))
    }

    /// The workspace directory.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Clones `repository` into the workspace (once; see [`repository::open`]) with the
    /// environment the agent's processes get.
    pub async fn open_repository(
        &self,
        repository: &str,
        branch: Option<&str>,
    ) -> Result<PathBuf, repository::RepositoryError> {
        let mut env = child_env::from_server();
        env.extend(self.config.env.iter().cloned());
        repository::open(
            &self.workspace,
            repository,
            branch,
            &env,
            &self.config.git_tokens,
        )
        .await
    }

    /// The environment a process of this conversation starts with (the server's
    /// allow-listed variables, the runtime's, and its marker, so that closing the
    /// conversation finds it): for MCP stdio servers.
    pub fn process_env(&self) -> Vec<(String, String)> {
        let mut env = child_env::from_server();
        env.extend(self.config.env.iter().cloned());
        env
    }

    /// Kills the running command and everything it started (Stop).
    pub fn interrupt(&self) {
        if let Some(shell) = self.current_shell() {
            shell.interrupt();
        }
        self.ipython.interrupt();
    }

    /// Kills the shell and every process of its session (close, delete, shutdown).
    pub fn close(&self) {
        if let Ok(browser) = &self.browser {
            browser.close();
        }
        if let Some(shell) = self.current_shell() {
            shell.kill_all();
        }
        self.ipython.close();
        // Daemons that left the shell's session carry the runtime's marker.
        let strays = process::kill_marked(child_env::MARKER, &self.id);
        if strays > 0 {
            tracing::info!(
                killed = strays,
                "killed processes that had left the shell's session"
            );
        }
    }

    /// Resolves an action's path: relative paths and `/workspace/...` are in the workspace.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if let Ok(rest) = p.strip_prefix("/workspace") {
            return self.workspace.join(rest);
        }
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.workspace.join(p)
        }
    }

    /// Executes one action and returns its observation (errors become `error`
    /// observations a model or a person can act on). `timeout` is the action's hard
    /// timeout in seconds; when given, the command blocks until it or the end.
    pub async fn execute(&self, action: &Action, timeout: Option<f64>) -> Observation {
        match action {
            Action::Run(args) => self.run(args, timeout).await,
            Action::Read(args) => {
                let path = self.resolve(&args.path);
                if let Some(denied) = self.denial(&path, sandbox::Access::Read) {
                    return denied;
                }
                let editor = self.editor.lock().await;
                let result = if args.impl_source == "oh_aci" || args.view_range.is_some() {
                    let range = args.view_range.as_deref().and_then(|r| match r {
                        [a, b] => Some([*a, *b]),
                        _ => None,
                    });
                    editor.view(&path, range)
                } else {
                    editor.read(&path, args.start, args.end)
                };
                match result {
                    Ok(content) => Observation {
                        content,
                        kind: ObservationKind::Read(FileReadExtras {
                            path: path.display().to_string(),
                            impl_source: args.impl_source.clone(),
                        }),
                    },
                    Err(e) => Observation::error(e.to_string(), ""),
                }
            }
            Action::Write(args) => {
                let path = self.resolve(&args.path);
                if let Some(denied) = self.denial(&path, sandbox::Access::Write) {
                    return denied;
                }
                match self.editor.lock().await.write(&path, &args.content) {
                    Ok(_) => Observation {
                        content: String::new(),
                        kind: ObservationKind::Write(FileWriteExtras {
                            path: path.display().to_string(),
                        }),
                    },
                    Err(e) => Observation::error(e.to_string(), ""),
                }
            }
            Action::Edit(args) => self.edit(args).await,
            Action::Browse(_) if !self.config.sandbox.network && self.config.sandbox.enabled() => {
                Observation::error(
                    "The network is off for this conversation (sandbox network = off): web pages cannot be fetched.",
                    "",
                )
            }
            Action::Browse(args) => {
                let page = browse::browse(&self.http, &args.url, self.config.browse).await;
                let mut extras = BrowseExtras::new(page.url);
                extras.error = page.error;
                Observation {
                    content: page.content,
                    kind: ObservationKind::Browse(Box::new(extras)),
                }
            }
            Action::RunIpython(args) => self.ipython.run(args, timeout, self.tap()).await,
            Action::BrowseInteractive(args) => match &self.browser {
                Ok(browser) => browser.execute(args).await,
                Err(why) => Observation::error(
                    format!("Interactive browsing is not available: {why}. Fetch pages with the browse action instead."),
                    "",
                ),
            },
            Action::CallToolMcp(a) => Observation::error(format!("MCP tool {:?} is not available: this server has no MCP servers configured.", a.name), ""),
            other => Observation::error(format!("The runtime cannot execute {} actions.", other.kind()), ""),
        }
    }

    async fn run(&self, args: &CmdRunArgs, timeout: Option<f64>) -> Observation {
        let (shell, restarted) = match self.shell().await {
            Ok(s) => s,
            Err(e) => return Observation::error(format!("The shell is not available: {e}"), ""),
        };
        let hard = timeout
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(|t| Duration::from_secs_f64(t.min(86_400.0)))
            .unwrap_or(self.config.default_timeout);
        let blocking = args.blocking || timeout.is_some();
        let command = args.command.trim_end_matches('\n');
        let input =
            if args.is_input || command.is_empty() || matches!(command, "C-c" | "C-d" | "C-z") {
                Input::ToProcess(command.to_string())
            } else {
                Input::Command(command.to_string())
            };
        let result = match shell.run_tapped(input, hard, blocking, self.tap()).await {
            Ok(r) => r,
            Err(e) => return Observation::error(format!("The command could not run: {e}"), ""),
        };
        let (exit_code, suffix) = match &result.ended {
            Ended::Exited(code) => (*code as i64, format!("\n[The command completed with exit code {code}.]")),
            Ended::StillRunning => (
                -1,
                format!(
                    "\n[The command has no new output after {} seconds. You may wait longer to see additional output by sending empty command '', send other commands to interact with the current process, send keys to interrupt/kill the command, or use the timeout parameter in execute_bash for future commands.]",
                    self.config.no_change_timeout.as_secs()
                ),
            ),
            Ended::TimedOut(secs) => (
                -1,
                format!("\n[The command timed out after {secs} seconds and was killed, with every process it started.]"),
            ),
        };
        let suffix = match sandbox::hint_for_output(&self.config.sandbox, exit_code, &result.output)
        {
            Some(hint) => format!("\n{hint}{suffix}"),
            None => suffix,
        };
        let prefix = if result.continued {
            "[Below is the output of the previous command.]\n".to_string()
        } else {
            String::new()
        };
        let content = if restarted {
            format!("[The previous shell had exited, so this command ran in a new one, started in the workspace: variables, functions and the working directory of the old shell are gone.]\n{}", result.output)
        } else {
            result.output
        };
        Observation {
            content,
            kind: ObservationKind::Run(CmdOutputExtras {
                command: args.command.clone(),
                metadata: CmdOutputMetadata {
                    exit_code,
                    pid: -1,
                    username: self.host.username.clone(),
                    hostname: self.host.hostname.clone(),
                    working_dir: Some(result.working_dir),
                    py_interpreter_path: self.host.python.clone(),
                    prefix,
                    suffix,
                },
                hidden: args.hidden,
            }),
        }
    }

    async fn edit(&self, args: &FileEditArgs) -> Observation {
        let path = self.resolve(&args.path);
        let access = if args.command == "view" {
            sandbox::Access::Read
        } else {
            sandbox::Access::Write
        };
        // A write reads the file too (undo, replace): both must be allowed.
        for a in [sandbox::Access::Read, access] {
            if let Some(denied) = self.denial(&path, a) {
                return denied;
            }
        }
        let mut editor = self.editor.lock().await;
        let result = match args.command.as_str() {
            "view" => {
                return match editor.view(&path, None) {
                    Ok(content) => Observation {
                        content,
                        kind: ObservationKind::Read(FileReadExtras {
                            path: path.display().to_string(),
                            impl_source: "oh_aci".into(),
                        }),
                    },
                    Err(e) => Observation::error(e.to_string(), ""),
                }
            }
            "create" => match &args.file_text {
                Some(text) => editor.create(&path, text),
                None => return Observation::error("Parameter `file_text` is required for command: create.", ""),
            },
            "str_replace" => match &args.old_str {
                Some(old) => editor.str_replace(&path, old, args.new_str.as_deref().unwrap_or("")),
                None => return Observation::error("Parameter `old_str` is required for command: str_replace.", ""),
            },
            "insert" => match (args.insert_line, &args.new_str) {
                (Some(line), Some(new)) => editor.insert(&path, line, new),
                _ => {
                    return Observation::error(
                        "Parameters `insert_line` and `new_str` are required for command: insert.",
                        "",
                    )
                }
            },
            "undo_edit" => editor.undo_edit(&path),
            "" if !args.content.is_empty() || args.file_text.is_some() => {
                editor.write(&path, args.file_text.as_deref().unwrap_or(&args.content))
            }
            other => {
                return Observation::error(
                    format!("Unrecognized command {other:?}. The allowed commands are: view, create, str_replace, insert, undo_edit."),
                    "",
                )
            }
        };
        match result {
            Ok(outcome) => Observation {
                content: outcome.content,
                kind: ObservationKind::Edit(FileEditExtras {
                    path: path.display().to_string(),
                    prev_exist: outcome.prev_exist,
                    old_content: outcome.old_content,
                    new_content: outcome.new_content,
                    impl_source: args.impl_source.clone(),
                    diff: Some(outcome.diff),
                    diff_cache: None,
                }),
            },
            Err(e) => Observation::error(e.to_string(), ""),
        }
    }
}

impl Drop for LocalRuntime {
    fn drop(&mut self) {
        self.close();
    }
}
