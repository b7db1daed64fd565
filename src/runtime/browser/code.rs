//! The BrowserGym action language the model writes: one or more calls such as
//! `fill('12', "Ada")` or `click('13', button='middle', modifiers=['Shift'])`, one per
//! line (or separated by `;`). Only literal arguments (strings, numbers, lists of those,
//! `True`/`False`/`None`) are accepted; nothing is evaluated.

use thiserror::Error;

/// Programs longer than this are refused.
const MAX_CODE: usize = 64 * 1024;
/// At most this many calls per action.
const MAX_CALLS: usize = 20;
/// The functions the browser offers (BrowserGym's `bid` and `nav` sets, and the chat reply).
pub const FUNCTIONS: &[&str] = &[
    "goto",
    "go_back",
    "go_forward",
    "noop",
    "scroll",
    "fill",
    "select_option",
    "click",
    "dblclick",
    "hover",
    "press",
    "focus",
    "clear",
    "drag_and_drop",
    "upload_file",
    "send_msg_to_user",
];

/// Why a program was refused.
#[derive(Debug, Error, PartialEq)]
pub enum CodeError {
    #[error("the browser actions are empty; call one of: {}", FUNCTIONS.join(", "))]
    Empty,
    #[error("the browser actions are longer than {MAX_CODE} bytes")]
    TooLong,
    #[error("at most {MAX_CALLS} browser actions can be given at once")]
    TooMany,
    #[error("syntax error at character {at}: {what}. Write calls such as click('12') or fill('3', \"text\"), one per line")]
    Syntax { at: usize, what: String },
    #[error("unknown function {0:?}; the available ones are: {list}", list = FUNCTIONS.join(", "))]
    Unknown(String),
    #[error("{function}(): {problem}")]
    Arguments { function: String, problem: String },
}

/// A literal argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    None,
    List(Vec<Literal>),
}

/// One call as written.
#[derive(Debug, Clone, PartialEq)]
struct Call {
    function: String,
    positional: Vec<Literal>,
    keyword: Vec<(String, Literal)>,
}

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    Left,
    Middle,
    Right,
}

impl Button {
    /// The name CDP uses.
    pub fn cdp(self) -> &'static str {
        match self {
            Button::Left => "left",
            Button::Middle => "middle",
            Button::Right => "right",
        }
    }
}

/// A browser action, checked and typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Goto(String),
    GoBack,
    GoForward,
    Noop {
        wait_ms: f64,
    },
    Scroll {
        dx: f64,
        dy: f64,
    },
    Fill {
        bid: String,
        value: String,
    },
    SelectOption {
        bid: String,
        options: Vec<String>,
    },
    Click {
        bid: String,
        button: Button,
        modifiers: Vec<String>,
        double: bool,
    },
    Hover(String),
    Press {
        bid: String,
        keys: String,
    },
    Focus(String),
    Clear(String),
    DragAndDrop {
        from: String,
        to: String,
    },
    UploadFile {
        bid: String,
        files: Vec<String>,
    },
    SendMsgToUser(String),
}

/// Parses a program into its commands (nothing runs if any of it is wrong).
pub fn parse(code: &str) -> Result<Vec<Command>, CodeError> {
    if code.len() > MAX_CODE {
        return Err(CodeError::TooLong);
    }
    let calls = Parser { text: code, at: 0 }.program()?;
    if calls.is_empty() {
        return Err(CodeError::Empty);
    }
    if calls.len() > MAX_CALLS {
        return Err(CodeError::TooMany);
    }
    calls.into_iter().map(command).collect()
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn error<T>(&self, what: impl Into<String>) -> Result<T, CodeError> {
        Err(CodeError::Syntax {
            at: self.text[..self.at].chars().count(),
            what: what.into(),
        })
    }

    /// Skips spaces, tabs and comments; with `newlines`, line breaks and `;` too.
    fn skip(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\r' => {
                    self.bump();
                }
                '\n' | ';' if newlines => {
                    self.bump();
                }
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    fn program(mut self) -> Result<Vec<Call>, CodeError> {
        let mut calls = Vec::new();
        loop {
            self.skip(true);
            if self.peek().is_none() {
                return Ok(calls);
            }
            if calls.len() > MAX_CALLS {
                return Err(CodeError::TooMany);
            }
            calls.push(self.call()?);
            self.skip(false);
            match self.peek() {
                None | Some('\n') | Some(';') => {}
                Some(c) => return self.error(format!("unexpected {c:?} after a call")),
            }
        }
    }

    fn identifier(&mut self) -> Result<String, CodeError> {
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        let name = &self.text[start..self.at];
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            self.at = start;
            return self.error("expected a function name");
        }
        Ok(name.to_string())
    }

    fn call(&mut self) -> Result<Call, CodeError> {
        let function = self.identifier()?;
        self.skip(false);
        if self.bump() != Some('(') {
            return self.error(format!("expected '(' after {function}"));
        }
        let mut call = Call {
            function,
            positional: Vec::new(),
            keyword: Vec::new(),
        };
        loop {
            self.skip(true);
            if self.peek() == Some(')') {
                self.bump();
                return Ok(call);
            }
            // `name=value` or a literal.
            let save = self.at;
            let keyword = match self.identifier() {
                Ok(name) => {
                    self.skip(false);
                    if self.peek() == Some('=') {
                        self.bump();
                        Some(name)
                    } else {
                        self.at = save;
                        None
                    }
                }
                Err(_) => {
                    self.at = save;
                    None
                }
            };
            self.skip(true);
            let value = self.literal(0)?;
            match keyword {
                Some(name) => call.keyword.push((name, value)),
                None if !call.keyword.is_empty() => {
                    return self.error("positional argument after a keyword argument")
                }
                None => call.positional.push(value),
            }
            self.skip(true);
            match self.bump() {
                Some(',') => {}
                Some(')') => return Ok(call),
                _ => return self.error("expected ',' or ')'"),
            }
        }
    }

    fn literal(&mut self, depth: usize) -> Result<Literal, CodeError> {
        match self.peek() {
            Some('\'' | '"') => self.string().map(Literal::Str),
            Some('[' | '(') if depth < 2 => {
                let close = if self.bump() == Some('[') { ']' } else { ')' };
                let mut items = Vec::new();
                loop {
                    self.skip(true);
                    if self.peek() == Some(close) {
                        self.bump();
                        return Ok(Literal::List(items));
                    }
                    items.push(self.literal(depth + 1)?);
                    self.skip(true);
                    match self.bump() {
                        Some(',') => {}
                        Some(c) if c == close => return Ok(Literal::List(items)),
                        _ => return self.error(format!("expected ',' or '{close}'")),
                    }
                }
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                let start = self.at;
                self.bump();
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '_'))
                {
                    self.bump();
                }
                match self.text[start..self.at].replace('_', "").parse::<f64>() {
                    Ok(n) if n.is_finite() => Ok(Literal::Num(n)),
                    _ => {
                        self.at = start;
                        self.error("invalid number")
                    }
                }
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.at;
                let word = self.identifier()?;
                match word.as_str() {
                    "True" | "true" => Ok(Literal::Bool(true)),
                    "False" | "false" => Ok(Literal::Bool(false)),
                    "None" => Ok(Literal::None),
                    _ => {
                        self.at = start;
                        self.error(format!(
                            "{word:?} is not a literal; only strings, numbers, lists, True, False and None are accepted"
                        ))
                    }
                }
            }
            Some(c) => self.error(format!("unexpected {c:?}")),
            None => self.error("unexpected end of the actions"),
        }
    }

    /// A Python string literal in single or double quotes (triple quotes too), with its escapes.
    fn string(&mut self) -> Result<String, CodeError> {
        let Some(quote) = self.bump() else {
            return self.error("expected a string");
        };
        let triple = self.rest().starts_with(&format!("{quote}{quote}"));
        if triple {
            self.bump();
            self.bump();
        }
        let mut out = String::new();
        loop {
            let Some(c) = self.bump() else {
                return self.error("unterminated string");
            };
            if c == quote {
                if !triple {
                    return Ok(out);
                }
                if self.rest().starts_with(&format!("{quote}{quote}")) {
                    self.bump();
                    self.bump();
                    return Ok(out);
                }
                out.push(c);
                continue;
            }
            if c == '\n' && !triple {
                return self.error("line break inside a string (write \\n)");
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.bump() else {
                return self.error("unterminated string");
            };
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                '0' => out.push('\0'),
                '\\' | '\'' | '"' => out.push(e),
                '\n' => {}
                'x' | 'u' | 'U' => {
                    let len = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let digits: String = self.rest().chars().take(len).collect();
                    match u32::from_str_radix(&digits, 16)
                        .ok()
                        .and_then(char::from_u32)
                    {
                        Some(ch) if digits.len() == len => {
                            self.at += len;
                            out.push(ch);
                        }
                        _ => return self.error(format!("invalid \\{e} escape")),
                    }
                }
                other => {
                    out.push('\\');
                    out.push(other);
                }
            }
        }
    }
}

/// Reads the arguments of a call by position or name.
struct Args {
    function: String,
    values: Vec<Option<Literal>>,
}

impl Args {
    fn bind(call: Call, names: &[&str]) -> Result<Args, CodeError> {
        let function = call.function;
        let fail = |problem: String| CodeError::Arguments {
            function: function.clone(),
            problem,
        };
        if call.positional.len() > names.len() {
            return Err(fail(format!(
                "takes at most {} arguments ({}), {} given",
                names.len(),
                names.join(", "),
                call.positional.len()
            )));
        }
        let mut values: Vec<Option<Literal>> = vec![None; names.len()];
        for (i, v) in call.positional.into_iter().enumerate() {
            values[i] = Some(v);
        }
        for (name, v) in call.keyword {
            let Some(i) = names.iter().position(|n| *n == name) else {
                return Err(fail(format!("unexpected argument {name:?}")));
            };
            if values[i].is_some() {
                return Err(fail(format!("argument {name:?} given twice")));
            }
            values[i] = Some(v);
        }
        Ok(Args { function, values })
    }

    fn fail<T>(&self, problem: String) -> Result<T, CodeError> {
        Err(CodeError::Arguments {
            function: self.function.clone(),
            problem,
        })
    }

    fn take(&mut self, i: usize, name: &str) -> Result<Literal, CodeError> {
        match self.values.get_mut(i).and_then(Option::take) {
            Some(v) => Ok(v),
            None => self.fail(format!("missing argument {name:?}")),
        }
    }

    fn string(&mut self, i: usize, name: &str) -> Result<String, CodeError> {
        match self.take(i, name)? {
            Literal::Str(s) => Ok(s),
            other => self.fail(format!("{name} must be a string, got {other:?}")),
        }
    }

    /// An element id: a string, or a number written without quotes.
    fn bid(&mut self, i: usize, name: &str) -> Result<String, CodeError> {
        let bid = match self.take(i, name)? {
            Literal::Str(s) => s,
            Literal::Num(n) if n.fract() == 0.0 && n >= 0.0 => format!("{n:.0}"),
            other => return self.fail(format!("{name} must be a string, got {other:?}")),
        };
        if bid.is_empty()
            || bid.len() > 32
            || !bid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return self.fail(format!(
                "{bid:?} is not an element id; use the [bid] shown in the accessibility tree"
            ));
        }
        Ok(bid)
    }

    fn number(&mut self, i: usize, name: &str, default: Option<f64>) -> Result<f64, CodeError> {
        match self.values.get_mut(i).and_then(Option::take) {
            Some(Literal::Num(n)) => Ok(n),
            Some(other) => self.fail(format!("{name} must be a number, got {other:?}")),
            None => match default {
                Some(d) => Ok(d),
                None => self.fail(format!("missing argument {name:?}")),
            },
        }
    }

    /// A string or a list of strings.
    fn strings(&mut self, i: usize, name: &str, required: bool) -> Result<Vec<String>, CodeError> {
        match self.values.get_mut(i).and_then(Option::take) {
            Some(Literal::Str(s)) => Ok(vec![s]),
            Some(Literal::List(items)) => items
                .into_iter()
                .map(|item| match item {
                    Literal::Str(s) => Ok(s),
                    other => self.fail(format!("{name} must hold strings, got {other:?}")),
                })
                .collect(),
            None if !required => Ok(Vec::new()),
            None => self.fail(format!("missing argument {name:?}")),
            Some(other) => self.fail(format!(
                "{name} must be a string or a list of strings, got {other:?}"
            )),
        }
    }
}

fn command(call: Call) -> Result<Command, CodeError> {
    let function = call.function.clone();
    let signature: &[&str] = match function.as_str() {
        "goto" => &["url"],
        "go_back" | "go_forward" => &[],
        "noop" => &["wait_ms"],
        "scroll" => &["delta_x", "delta_y"],
        "fill" => &["bid", "value"],
        "select_option" => &["bid", "options"],
        "click" | "dblclick" => &["bid", "button", "modifiers"],
        "hover" | "focus" | "clear" => &["bid"],
        "press" => &["bid", "key_comb"],
        "drag_and_drop" => &["from_bid", "to_bid"],
        "upload_file" => &["bid", "file"],
        "send_msg_to_user" => &["text"],
        _ => return Err(CodeError::Unknown(function)),
    };
    let mut a = Args::bind(call, signature)?;
    Ok(match function.as_str() {
        "goto" => Command::Goto(a.string(0, "url")?),
        "go_back" => Command::GoBack,
        "go_forward" => Command::GoForward,
        "noop" => Command::Noop {
            wait_ms: a.number(0, "wait_ms", Some(1000.0))?,
        },
        "scroll" => Command::Scroll {
            dx: a.number(0, "delta_x", None)?,
            dy: a.number(1, "delta_y", None)?,
        },
        "fill" => Command::Fill {
            bid: a.bid(0, "bid")?,
            value: a.string(1, "value")?,
        },
        "select_option" => Command::SelectOption {
            bid: a.bid(0, "bid")?,
            options: a.strings(1, "options", true)?,
        },
        "click" | "dblclick" => {
            let bid = a.bid(0, "bid")?;
            let button = match a.values.get_mut(1).and_then(Option::take) {
                None => Button::Left,
                Some(Literal::Str(s)) if s == "left" => Button::Left,
                Some(Literal::Str(s)) if s == "middle" => Button::Middle,
                Some(Literal::Str(s)) if s == "right" => Button::Right,
                Some(other) => {
                    return a.fail(format!(
                        "button must be 'left', 'middle' or 'right', got {other:?}"
                    ))
                }
            };
            let modifiers = a.strings(2, "modifiers", false)?;
            if let Some(m) = modifiers.iter().find(|m| {
                !matches!(
                    m.as_str(),
                    "Alt" | "Control" | "ControlOrMeta" | "Meta" | "Shift"
                )
            }) {
                return a.fail(format!(
                    "unknown modifier {m:?}; use Alt, Control, ControlOrMeta, Meta or Shift"
                ));
            }
            Command::Click {
                bid,
                button,
                modifiers,
                double: function == "dblclick",
            }
        }
        "hover" => Command::Hover(a.bid(0, "bid")?),
        "focus" => Command::Focus(a.bid(0, "bid")?),
        "clear" => Command::Clear(a.bid(0, "bid")?),
        "press" => Command::Press {
            bid: a.bid(0, "bid")?,
            keys: a.string(1, "key_comb")?,
        },
        "drag_and_drop" => Command::DragAndDrop {
            from: a.bid(0, "from_bid")?,
            to: a.bid(1, "to_bid")?,
        },
        "upload_file" => Command::UploadFile {
            bid: a.bid(0, "bid")?,
            files: a.strings(1, "file", true)?,
        },
        _ => Command::SendMsgToUser(a.string(0, "text")?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_with_both_quotes_keywords_and_lists_parse() {
        let commands = parse(
            "fill('a12', 'example with \"quotes\"')\nclick(\"48\", button='middle', modifiers=['Shift'])\n# a comment\nselect_option('c48', ['red', 'green']); noop(500)\nscroll(-50.2, -100.5)\n",
        )
        .unwrap();
        assert_eq!(
            commands,
            vec![
                Command::Fill {
                    bid: "a12".into(),
                    value: "example with \"quotes\"".into()
                },
                Command::Click {
                    bid: "48".into(),
                    button: Button::Middle,
                    modifiers: vec!["Shift".into()],
                    double: false
                },
                Command::SelectOption {
                    bid: "c48".into(),
                    options: vec!["red".into(), "green".into()]
                },
                Command::Noop { wait_ms: 500.0 },
                Command::Scroll {
                    dx: -50.2,
                    dy: -100.5
                },
            ]
        );
    }

    #[test]
    fn escapes_in_strings_are_decoded() {
        assert_eq!(
            parse(r"fill('45', 'multi-line\nexample \u00e9 \\ \'')").unwrap(),
            vec![Command::Fill {
                bid: "45".into(),
                value: "multi-line\nexample é \\ '".into()
            }]
        );
    }

    #[test]
    fn anything_but_literal_calls_is_refused() {
        for bad in [
            "import os",
            "goto(url)",
            "__import__('os').system('id')",
            "click('1')).x",
            "click('1') + click('2')",
            "fill('1', 'unterminated)",
            "click(",
            "goto('a' 'b')",
            "click(x=1, '2')",
            "[[[[1]]]]",
        ] {
            assert!(
                matches!(parse(bad), Err(CodeError::Syntax { .. })),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        assert_eq!(parse("  \n# only a comment\n"), Err(CodeError::Empty));
        assert!(matches!(parse("exec('x')"), Err(CodeError::Unknown(f)) if f == "exec"));
        assert!(matches!(parse("click()"), Err(CodeError::Arguments { .. })));
        assert!(matches!(
            parse("click('1', button='up')"),
            Err(CodeError::Arguments { .. })
        ));
        assert!(matches!(
            parse("click('1\"]')"),
            Err(CodeError::Arguments { .. })
        ));
        assert!(matches!(
            parse("goto('a', 'b')"),
            Err(CodeError::Arguments { .. })
        ));
        assert_eq!(parse(&"noop()\n".repeat(21)), Err(CodeError::TooMany));
        assert_eq!(parse(&"x".repeat(MAX_CODE + 1)), Err(CodeError::TooLong));
    }

    #[test]
    fn defaults_and_unquoted_ids_are_accepted() {
        assert_eq!(
            parse("noop()\nclick(12)\ngo_back()").unwrap(),
            vec![
                Command::Noop { wait_ms: 1000.0 },
                Command::Click {
                    bid: "12".into(),
                    button: Button::Left,
                    modifiers: vec![],
                    double: false
                },
                Command::GoBack
            ]
        );
    }
}
