"""What the repository's Markdown says, as data: headings' anchors, relative links, shell commands.

Parsed with markdown-it-py (CommonMark + GitHub's tables), so a link inside a code span or a
fenced block is no link, and a `#` inside a fence is no heading. `make lint` checks every relative
link and anchor with it (`python -m ci.doclinks`); tests/docs runs the commands the docs show.
"""

from __future__ import annotations

import re
import shlex
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from markdown_it import MarkdownIt
from markdown_it.token import Token

# Languages of fenced blocks whose lines are shell commands. In `console` blocks only the lines
# after a `$ ` prompt are commands (the rest is output).
SCRIPT_LANGUAGES = frozenset({"sh", "bash", "shell", "zsh"})
CONSOLE_LANGUAGES = frozenset({"console", "shell-session"})
PROMPT = "$ "
# Shell control operators that end one simple command (shlex with punctuation_chars yields them).
OPERATORS = frozenset({"&&", "||", ";", "|", "&", "(", ")"})
REDIRECTIONS = frozenset({"<", ">", ">>", "2>", "2>&1", "<<"})
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
# `$(...)` and `<placeholder>` stand for one word; the checks look at programs and options only.
SUBSTITUTION = re.compile(r"\$\([^()]*\)")
PLACEHOLDER = re.compile(r"<[A-Za-z0-9_.-]+>")
HTML_ANCHOR = re.compile(r"""<a\s[^>]*?\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


# --- anchors ----------------------------------------------------------------------------------


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text: lower case, every character that is not a letter,
    digit, mark, connector punctuation (`_`), hyphen or space removed, each space a hyphen."""
    kept = (
        c
        for c in heading.lower()
        if c in " -" or unicodedata.category(c)[0] in "LNM" or unicodedata.category(c) == "Pc"
    )
    return "".join(kept).replace(" ", "-")


def inline_text(token: Token) -> str:
    """The text a reader sees in an inline token: code spans keep their content, markup goes."""
    parts = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(inline_text(child))
    return "".join(parts)


def anchors(tokens: list[Token]) -> set[str]:
    """Every fragment a link may name in this document: headings (a repeated slug gets -1, -2,
    ... as on GitHub) and HTML `<a id=...>` / `<a name=...>`."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for i, token in enumerate(tokens):
        if token.type == "heading_open":
            base = slug(inline_text(tokens[i + 1]).strip())
            name = base
            while name in found:
                seen[base] = seen.get(base, 0) + 1
                name = f"{base}-{seen[base]}"
            found.add(name)
        for html in _html(token):
            found.update(HTML_ANCHOR.findall(html))
    return found


def _html(token: Token) -> Iterator[str]:
    if token.type == "html_block":
        yield token.content
    for child in token.children or []:
        if child.type == "html_inline":
            yield child.content


# --- links ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    target: str
    line: int  # 1-based line of the block the link is in


def links(tokens: list[Token]) -> list[Link]:
    """Every link and image target of the document, with the line of its block."""
    found: list[Link] = []
    for token in tokens:
        line = token.map[0] + 1 if token.map else 0
        for child in token.children or []:
            target = child.attrGet("href") if child.type == "link_open" else None
            if child.type == "image":
                target = child.attrGet("src")
            if isinstance(target, str):
                found.append(Link(target, line))
    return found


def is_relative(target: str) -> bool:
    """A link into the repository: no scheme (https:, mailto:), not protocol-relative."""
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc and not target.startswith("//")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    target: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.target}: {self.reason}"


@dataclass
class Docs:
    """The Markdown files of a checkout, parsed once each."""

    root: Path
    files: list[str]  # relative POSIX paths
    _tokens: dict[str, list[Token]] = field(default_factory=dict)

    def tokens(self, name: str) -> list[Token]:
        if name not in self._tokens:
            text = (self.root / name).read_text(encoding="utf-8")
            self._tokens[name] = parser().parse(text)
        return self._tokens[name]

    def problems(self) -> list[Problem]:
        return [p for name in self.files for p in self._check(name)]

    def _check(self, name: str) -> Iterator[Problem]:
        for link in links(self.tokens(name)):
            if is_relative(link.target):
                reason = self._resolve(name, link.target)
                if reason:
                    yield Problem(name, link.line, link.target, reason)

    def _resolve(self, name: str, target: str) -> str:
        """Why `target`, linked from `name`, leads nowhere ("" when it is fine)."""
        parts = urlsplit(target)
        path, fragment = unquote(parts.path), unquote(parts.fragment)
        document = name if not path else _join(name, path)
        if document is None:
            return "points outside the repository"
        if path and not (self.root / document).exists():
            return f"no such file or directory: {document}"
        if not fragment or not document.endswith(".md") or (self.root / document).is_dir():
            return ""  # GitHub's line anchors (#L10) and the like are not checked
        if fragment not in anchors(self.tokens(document)):
            return f"no heading or anchor #{fragment} in {document}"
        return ""


def _join(name: str, path: str) -> str | None:
    """The repository path a link's path names (`/x` is the repository root on GitHub), or None
    when it climbs out of the repository."""
    base = PurePosixPath() if path.startswith("/") else PurePosixPath(name).parent
    parts: list[str] = []
    for part in (base / path.lstrip("/")).parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """One simple command shown in a fenced block: `argv` after its `VAR=value` assignments,
    run from `cwd` (relative to the repository; a `cd` earlier in the block moves it)."""

    file: str
    line: int
    text: str  # the logical line it came from, for messages
    env: tuple[tuple[str, str], ...]
    argv: tuple[str, ...]
    cwd: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.text}"


def commands(name: str, tokens: Iterable[Token]) -> list[Command]:
    """Every simple command of the document's shell and console blocks, in order."""
    found: list[Command] = []
    for token in tokens:
        language = token.info.split()[0] if token.type == "fence" and token.info else ""
        if language not in SCRIPT_LANGUAGES | CONSOLE_LANGUAGES or not token.map:
            continue
        cwd = PurePosixPath()  # commands in the docs are run from the repository root
        console = language in CONSOLE_LANGUAGES
        for line, text in _logical_lines(token.content, token.map[0] + 2, console=console):
            for env, argv in _simple_commands(text):
                if argv[0] == "cd" and len(argv) == 2:
                    cwd = PurePosixPath(_join(str(cwd / "x"), argv[1]) or ".")
                    continue
                found.append(Command(name, line, text, env, argv, str(cwd)))
    return found


def _logical_lines(content: str, first: int, *, console: bool) -> Iterator[tuple[int, str]]:
    """(line number, command text): continuation lines (`\\` at the end) joined; in a console
    block only prompted lines and their continuations."""
    pending: list[str] = []
    start = first
    for number, raw in enumerate(content.splitlines(), start=first):
        if not pending:
            if console and not raw.startswith(PROMPT):
                continue
            start = number
            raw = raw.removeprefix(PROMPT) if console else raw
        if raw.rstrip().endswith("\\"):
            pending.append(raw.rstrip()[:-1])
            continue
        text = " ".join([*pending, raw]).strip()
        pending = []
        if text and not text.startswith("#"):
            yield start, text


def _simple_commands(text: str) -> Iterator[tuple[tuple[tuple[str, str], ...], tuple[str, ...]]]:
    """Split one logical line at the control operators into (assignments, argv)."""
    text = PLACEHOLDER.sub("PLACEHOLDER", SUBSTITUTION.sub("SUBSTITUTION", _uncommented(text)))
    lexer = shlex.shlex(text, posix=True, punctuation_chars="();<>|&")
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[str] = []
    for word in [*lexer, ";"]:
        if word in OPERATORS:
            env, argv = _split_assignments(words)
            if argv:
                yield env, argv
            words = []
        else:
            words.append(word)


def _uncommented(text: str) -> str:
    """The line without its comment: a `#` outside quotes that starts a word, as in sh (shlex
    would also cut `https://host/page#anchor`)."""
    quote = ""
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i]
    return text


def _split_assignments(words: list[str]) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    env: list[tuple[str, str]] = []
    argv: list[str] = []
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
        elif word in REDIRECTIONS:
            skip_next = True  # the redirection's file is no argument
        elif not argv and ASSIGNMENT.match(word):
            key, _, value = word.partition("=")
            env.append((key, value))
        else:
            argv.append(word)
    return tuple(env), tuple(argv)
