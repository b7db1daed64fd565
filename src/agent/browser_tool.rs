//! The `browser` tool of the CodeAct agent: BrowserGym actions as a `code` string, which
//! becomes a `browse_interactive` action.

use serde_json::{json, Map, Value};

use super::tools::{check_keys, risk, string, ToolError};
use crate::events::{Action, BrowseInteractiveArgs};

const DESCRIPTION: &str = "Interact with the browser using Python code. Use it ONLY when you need to interact with a webpage.\n\nSee the description of \"code\" parameter for more details.\n\nMultiple actions can be provided at once, but will be executed sequentially without any feedback from the page.\nMore than 2-3 actions usually leads to failure or unexpected behavior. Example:\nfill('a12', 'example with \"quotes\"')\nclick('a51')\nclick('48', button='middle', modifiers=['Shift'])\n\nOnly http and https pages can be opened; downloads are saved in the workspace folder .browser_downloads, and only workspace files can be uploaded.";

const CODE: &str = r##"The Python code that interacts with the browser.

The following 15 functions are available. Nothing else is supported.

goto(url: str)
    Description: Navigate to a url.
    Examples:
        goto('http://www.example.com')

go_back()
    Description: Navigate to the previous page in history.
    Examples:
        go_back()

go_forward()
    Description: Navigate to the next page in history.
    Examples:
        go_forward()

noop(wait_ms: float = 1000)
    Description: Do nothing, and optionally wait for the given time (in milliseconds).
    You can use this to get the current page content and/or wait for the page to load.
    Examples:
        noop()

        noop(500)

scroll(delta_x: float, delta_y: float)
    Description: Scroll horizontally and vertically. Amounts in pixels, positive for right or down scrolling, negative for left or up scrolling. Dispatches a wheel event.
    Examples:
        scroll(0, 200)

        scroll(-50.2, -100.5)

fill(bid: str, value: str)
    Description: Fill out a form field. It focuses the element and triggers an input event with the entered text. It works for <input>, <textarea> and [contenteditable] elements.
    Examples:
        fill('237', 'example value')

        fill('45', 'multi-line\nexample')

        fill('a12', 'example with "quotes"')

select_option(bid: str, options: str | list[str])
    Description: Select one or multiple options in a <select> element. You can specify option value or label to select. Multiple options can be selected.
    Examples:
        select_option('a48', 'blue')

        select_option('c48', ['red', 'green', 'blue'])

click(bid: str, button: Literal['left', 'middle', 'right'] = 'left', modifiers: list[typing.Literal['Alt', 'Control', 'ControlOrMeta', 'Meta', 'Shift']] = [])
    Description: Click an element.
    Examples:
        click('a51')

        click('b22', button='right')

        click('48', button='middle', modifiers=['Shift'])

dblclick(bid: str, button: Literal['left', 'middle', 'right'] = 'left', modifiers: list[typing.Literal['Alt', 'Control', 'ControlOrMeta', 'Meta', 'Shift']] = [])
    Description: Double click an element.
    Examples:
        dblclick('12')

        dblclick('ca42', button='right')

        dblclick('178', button='middle', modifiers=['Shift'])

hover(bid: str)
    Description: Hover over an element.
    Examples:
        hover('b8')

press(bid: str, key_comb: str)
    Description: Focus the matching element and press a combination of keys. It accepts the logical key names that are emitted in the keyboardEvent.key property of the keyboard events: Backquote, Minus, Equal, Backslash, Backspace, Tab, Delete, Escape, ArrowDown, End, Enter, Home, Insert, PageDown, PageUp, ArrowRight, ArrowUp, F1 - F12, Digit0 - Digit9, KeyA - KeyZ, etc. You can alternatively specify a single character you'd like to produce such as "a" or "#". Following modification shortcuts are also supported: Shift, Control, Alt, Meta, ShiftLeft, ControlOrMeta. ControlOrMeta resolves to Control on Windows and Linux and to Meta on macOS.
    Examples:
        press('88', 'Backspace')

        press('a26', 'ControlOrMeta+a')

        press('a61', 'Meta+Shift+t')

focus(bid: str)
    Description: Focus the matching element.
    Examples:
        focus('b455')

clear(bid: str)
    Description: Clear the input field.
    Examples:
        clear('996')

drag_and_drop(from_bid: str, to_bid: str)
    Description: Perform a drag & drop. Hover the element that will be dragged. Press left mouse button. Move mouse to the element that will receive the drop. Release left mouse button.
    Examples:
        drag_and_drop('56', '498')

upload_file(bid: str, file: str | list[str])
    Description: Click an element and wait for a "filechooser" event, then select one or multiple input files for upload. Relative file paths are resolved relative to the current working directory. An empty list clears the selected files.
    Examples:
        upload_file('572', '/home/user/my_receipt.pdf')

        upload_file('63', ['/home/bob/Documents/image.jpg', '/home/bob/Documents/file.zip'])
"##;

/// The tool's schema, as upstream's CodeAct agent offers it.
pub fn definition() -> Value {
    json!({"type": "function", "function": {
        "name": "browser",
        "description": DESCRIPTION,
        "parameters": {"type": "object", "properties": {
            "code": {"type": "string", "description": CODE},
            "security_risk": {"type": "string", "enum": ["LOW", "MEDIUM", "HIGH"], "description": "The LLM's assessment of the safety risk of this action."},
        }, "required": ["code", "security_risk"]},
    }})
}

/// A `browser` call → `browse_interactive` (the code is checked when it runs, so the
/// model reads any syntax error in the observation).
pub fn to_action(args: &Map<String, Value>) -> Result<Action, ToolError> {
    check_keys(args, &["code", "security_risk"], "browser")?;
    Ok(Action::BrowseInteractive(BrowseInteractiveArgs {
        browser_actions: string(args, "code", "browser")?,
        thought: String::new(),
        browsergym_send_msg_to_user: String::new(),
        security_risk: risk(args),
        return_axtree: false,
    }))
}
