//! One IPython kernel process spoken to over the Jupyter messaging protocol (ZeroMQ):
//! start, run a cell collecting its outputs, interrupt, kill.

use jupyter_protocol::connection_info::Transport;
use jupyter_protocol::{
    ConnectionInfo, ExecuteRequest, ExecutionState, JupyterMessage, JupyterMessageContent,
    KernelInfoRequest, MediaType,
};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, watch, Mutex, Notify};
use tokio::time::Instant;

use super::output::CellOutput;

/// How long a kernel has to answer after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an interrupted cell has to stop before the kernel is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// Standard error kept from the kernel process (to say why it failed to start).
const STDERR_TAIL: usize = 4096;

/// Why a kernel could not start or serve a cell.
#[derive(Debug, Error)]
pub enum KernelError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("Jupyter protocol error: {0}")]
    Protocol(#[from] jupyter_zmq_client::RuntimeError),
    #[error("the kernel did not answer within {0:?}{1}")]
    StartTimeout(Duration, String),
    #[error("the kernel process exited ({0}){1}")]
    Exited(String, String),
    #[error("the sandbox could not be set up: {0}")]
    Sandbox(crate::runtime::sandbox::SandboxError),
}

/// What the cell's limits are.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Interrupt when the cell has produced no output for this long (None: never).
    pub soft: Option<Duration>,
    /// Interrupt when the cell has run this long.
    pub hard: Duration,
}

/// How a cell ended.
#[derive(Debug, Clone, PartialEq)]
pub enum CellEnd {
    /// The kernel finished it (an exception included).
    Finished,
    /// No output for this long: interrupted.
    Silent(Duration),
    /// Ran this long: interrupted.
    TimedOut(Duration),
    /// The user's Stop interrupted it.
    Stopped,
    /// The kernel ignored the interrupt and was killed.
    Killed,
    /// The kernel process died (the description of its exit).
    Died(String),
}

struct Channels {
    shell: jupyter_zmq_client::DealerSendConnection,
    iopub: mpsc::Receiver<JupyterMessage>,
    /// Replies on the shell channel (drained; the iopub `idle` status ends a cell).
    replies: mpsc::Receiver<JupyterMessage>,
}

/// A running kernel.
pub struct Kernel {
    pid: i32,
    channels: Mutex<Channels>,
    exited: watch::Receiver<Option<String>>,
    stderr: Arc<std::sync::Mutex<String>>,
    connection_file: PathBuf,
    /// Set by [`Kernel::interrupt`] for the cell that runs.
    stop_requested: AtomicBool,
    stop: Notify,
    /// Set once the kernel was killed (before its exit is observed).
    killed: AtomicBool,
}

fn tail_note(stderr: &std::sync::Mutex<String>) -> String {
    match stderr.lock() {
        Ok(s) if !s.trim().is_empty() => format!("; its last error output:\n{}", s.trim_end()),
        _ => String::new(),
    }
}

/// Writes the connection file (it holds the signing key) readable by this user only.
fn write_connection_file(dir: &Path, info: &ConnectionInfo) -> Result<PathBuf, KernelError> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let path = dir.join(format!("kernel-{}.json", uuid::Uuid::new_v4().simple()));
    let text = serde_json::to_vec(info).map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(&text)?;
    Ok(path)
}

/// Forwards every message of a receiving connection into a channel until either ends.
fn forward<S>(mut conn: jupyter_zmq_client::Connection<S>, tx: mpsc::Sender<JupyterMessage>)
where
    S: zeromq::SocketRecv + Send + 'static,
{
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            match conn.read().await {
                Ok(msg) => {
                    failures = 0;
                    if tx.send(msg).await.is_err() {
                        break;
                    }
                }
                Err(jupyter_zmq_client::RuntimeError::ZmqError(e)) => {
                    tracing::debug!(error = %e, "kernel socket closed");
                    break;
                }
                Err(e) => {
                    // A message we cannot decode: skip it, unless nothing decodes any more.
                    failures += 1;
                    tracing::debug!(error = %e, "undecodable kernel message");
                    if failures > 1000 {
                        break;
                    }
                }
            }
        }
    });
}

impl Kernel {
    /// Starts a kernel with `python` in `cwd` with environment `env`, and waits until it
    /// answers on both the shell and the iopub channels.
    pub async fn start(
        python: &str,
        cwd: &Path,
        env: &[(String, String)],
        runtime_dir: &Path,
        confine: crate::runtime::sandbox::Prepared,
    ) -> Result<Kernel, KernelError> {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let (ports, listeners) = jupyter_zmq_client::peek_ports_with_listeners(ip, 5).await?;
        let info = ConnectionInfo {
            transport: Transport::TCP,
            ip: ip.to_string(),
            stdin_port: ports[0],
            control_port: ports[1],
            hb_port: ports[2],
            shell_port: ports[3],
            iopub_port: ports[4],
            signature_scheme: "hmac-sha256".into(),
            key: uuid::Uuid::new_v4().simple().to_string(),
            kernel_name: Some("python3".into()),
        };
        let connection_file = write_connection_file(runtime_dir, &info)?;
        let spawned = super::spawn::spawn_kernel(python, &connection_file, cwd, env, confine);
        drop(listeners);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(&connection_file);
                return Err(e.into());
            }
        };
        let pid = child.id().map(|p| p as i32).unwrap_or(-1);
        let stderr = Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let keep = stderr.clone();
            tokio::spawn(async move {
                let mut chunk = vec![0u8; 4096];
                while let Ok(n) = pipe.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = keep.lock() {
                        s.push_str(&String::from_utf8_lossy(&chunk[..n]));
                        if s.len() > STDERR_TAIL {
                            let cut = s.len() - STDERR_TAIL;
                            let cut = (cut..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(0);
                            s.drain(..cut);
                        }
                    }
                }
            });
        }
        let (exit_tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            let status = match child.wait().await {
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            let _ = exit_tx.send(Some(status));
        });
        let kernel = Kernel::connect(pid, &info, exited, stderr, connection_file).await;
        match kernel {
            Ok(k) => {
                k.handshake().await?;
                Ok(k)
            }
            Err(e) => {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                Err(e)
            }
        }
    }

    async fn connect(
        pid: i32,
        info: &ConnectionInfo,
        exited: watch::Receiver<Option<String>>,
        stderr: Arc<std::sync::Mutex<String>>,
        connection_file: PathBuf,
    ) -> Result<Kernel, KernelError> {
        let session = uuid::Uuid::new_v4().to_string();
        let iopub = jupyter_zmq_client::create_client_iopub_connection(info, "", &session).await?;
        let identity = jupyter_zmq_client::peer_identity_for_session(&session)?;
        let shell = jupyter_zmq_client::create_client_shell_connection_with_identity(
            info, &session, identity,
        )
        .await?;
        let (shell, shell_recv) = shell.split();
        let (iopub_tx, iopub_rx) = mpsc::channel(1024);
        let (reply_tx, reply_rx) = mpsc::channel(64);
        forward(iopub, iopub_tx);
        forward(shell_recv, reply_tx);
        Ok(Kernel {
            pid,
            channels: Mutex::new(Channels {
                shell,
                iopub: iopub_rx,
                replies: reply_rx,
            }),
            exited,
            stderr,
            connection_file,
            stop_requested: AtomicBool::new(false),
            stop: Notify::new(),
            killed: AtomicBool::new(false),
        })
    }

    /// Asks for the kernel's info until an answer shows that the iopub subscription is
    /// live (messages published before it would be lost), then turns colours off.
    async fn handshake(&self) -> Result<(), KernelError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut exited = self.exited.clone();
        let mut guard = self.channels.lock().await;
        let ch = &mut *guard;
        'rounds: loop {
            if Instant::now() >= deadline {
                self.kill();
                return Err(KernelError::StartTimeout(
                    START_TIMEOUT,
                    tail_note(&self.stderr),
                ));
            }
            ch.shell
                .send(JupyterMessage::new(KernelInfoRequest {}, None))
                .await?;
            let round = tokio::time::sleep(Duration::from_millis(250));
            tokio::pin!(round);
            loop {
                tokio::select! {
                    msg = ch.iopub.recv() => match msg {
                        Some(_) => break 'rounds,
                        None => return Err(self.exit_error().await),
                    },
                    _ = ch.replies.recv() => {}
                    _ = exited.changed() => return Err(self.exit_error().await),
                    _ = &mut round => break,
                }
            }
        }
        drop(guard);
        // Drain the kernel-info traffic before the first cell.
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.drain().await;
        Ok(())
    }

    async fn exit_error(&self) -> KernelError {
        let mut exited = self.exited.clone();
        let _ =
            tokio::time::timeout(Duration::from_secs(2), exited.wait_for(Option::is_some)).await;
        // Give the stderr reader a moment to collect the last words.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let how = self
            .exited
            .borrow()
            .clone()
            .unwrap_or_else(|| "its channels closed".into());
        KernelError::Exited(how, tail_note(&self.stderr))
    }

    async fn drain(&self) {
        let mut ch = self.channels.lock().await;
        while ch.iopub.try_recv().is_ok() {}
        while ch.replies.try_recv().is_ok() {}
    }

    /// Whether the kernel process has ended.
    pub fn has_exited(&self) -> bool {
        self.killed.load(Ordering::SeqCst) || self.exited.borrow().is_some()
    }

    /// The kernel's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn signal(&self, signal: Signal) {
        if self.pid > 0 {
            let _ = killpg(Pid::from_raw(self.pid), signal);
        }
    }

    /// Interrupts the running cell (Stop): SIGINT to the kernel's process group, as
    /// Jupyter does for kernels whose interrupt mode is "signal". An idle kernel ignores it.
    pub fn interrupt(&self) {
        self.stop_requested.store(true, Ordering::SeqCst);
        self.stop.notify_one();
        self.signal(Signal::SIGINT);
    }

    /// Kills the kernel and every process of its group.
    pub fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.signal(Signal::SIGKILL);
        let _ = std::fs::remove_file(&self.connection_file);
    }

    /// Runs `code` as one cell and collects its outputs within `limits`.
    /// Printed output (streams and tracebacks) also goes to `tap` as it arrives.
    pub async fn execute(
        &self,
        code: &str,
        limits: Limits,
        tap: Option<&dyn crate::runtime::output_tap::OutputTap>,
    ) -> Result<CellOutput, KernelError> {
        let mut guard = self.channels.lock().await;
        let ch = &mut *guard;
        while ch.iopub.try_recv().is_ok() {}
        while ch.replies.try_recv().is_ok() {}
        self.stop_requested.store(false, Ordering::SeqCst);
        let request = ExecuteRequest {
            code: code.to_string(),
            silent: false,
            store_history: true,
            user_expressions: None,
            allow_stdin: false,
            stop_on_error: true,
        };
        let request: JupyterMessage = request.into();
        let msg_id = request.header.msg_id.clone();
        ch.shell.send(request).await?;
        let start = Instant::now();
        let mut last_output = start;
        let mut out = CellOutput::default();
        // Set once the kernel was interrupted: when, and why.
        let mut interrupted: Option<(Instant, CellEnd)> = None;
        let mut exited = self.exited.clone();
        if exited.borrow().is_some() {
            return Err(self.exit_error().await);
        }
        loop {
            let deadline = match &interrupted {
                Some((at, _)) => *at + INTERRUPT_GRACE,
                None => {
                    let hard = start + limits.hard;
                    match limits.soft {
                        Some(soft) => hard.min(last_output + soft),
                        None => hard,
                    }
                }
            };
            tokio::select! {
                msg = ch.iopub.recv() => {
                    let Some(msg) = msg else {
                        out.end = CellEnd::Died(self.exit_error().await.to_string());
                        return Ok(out);
                    };
                    let ours = msg.parent_header.as_ref().is_some_and(|h| h.msg_id == msg_id);
                    if !ours {
                        continue;
                    }
                    match msg.content {
                        JupyterMessageContent::StreamContent(s) => {
                            if let Some(tap) = tap {
                                tap.output(s.text.as_bytes());
                            }
                            out.push_text(&s.text);
                            last_output = Instant::now();
                        }
                        JupyterMessageContent::ExecuteResult(r) => {
                            push_media(&mut out, &r.data.content);
                            last_output = Instant::now();
                        }
                        JupyterMessageContent::DisplayData(d) => {
                            push_media(&mut out, &d.data.content);
                            last_output = Instant::now();
                        }
                        JupyterMessageContent::ErrorOutput(e) => {
                            if let Some(tap) = tap {
                                tap.output(super::output::strip_ansi(&e.traceback.join("\n")).as_bytes());
                                tap.output(b"\n");
                            }
                            out.push_text(&e.traceback.join("\n"));
                            out.push_text("\n");
                            last_output = Instant::now();
                        }
                        JupyterMessageContent::Status(s) if s.execution_state == ExecutionState::Idle => {
                            out.end = match interrupted {
                                Some((_, why)) => why,
                                None => CellEnd::Finished,
                            };
                            return Ok(out);
                        }
                        _ => {}
                    }
                }
                _ = ch.replies.recv() => {}
                _ = exited.changed() => {
                    out.end = CellEnd::Died(self.exit_error().await.to_string());
                    return Ok(out);
                }
                _ = self.stop.notified(), if interrupted.is_none() => {
                    // A permit left by a Stop between cells is stale: the flag says.
                    if self.stop_requested.load(Ordering::SeqCst) {
                        interrupted = Some((Instant::now(), CellEnd::Stopped));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if interrupted.is_some() {
                        // The interrupt did not stop it: nothing short of a kill will.
                        self.kill();
                        out.end = CellEnd::Killed;
                        return Ok(out);
                    }
                    let silent_for = Instant::now() - last_output;
                    let why = match limits.soft {
                        Some(soft) if silent_for >= soft && Instant::now() - start < limits.hard => CellEnd::Silent(soft),
                        _ => CellEnd::TimedOut(limits.hard),
                    };
                    self.signal(Signal::SIGINT);
                    interrupted = Some((Instant::now(), why));
                }
            }
        }
    }
}

/// A display's text and its PNG image, as the Python server keeps them.
fn push_media(out: &mut CellOutput, content: &[MediaType]) {
    for media in content {
        match media {
            MediaType::Plain(text) => {
                out.push_text(text);
                out.push_text("\n");
            }
            MediaType::Png(data) => out.push_image(data),
            _ => {}
        }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        self.kill();
    }
}
