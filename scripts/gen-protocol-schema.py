#!/usr/bin/env python3
"""Writes crates/protocol/src/schema/generated.rs: the wire layout of every message that the
`kafka-protocol` crate decodes, as a table the bounds checker walks.

The layout is read off the crate's own generated decoders (one `impl Decodable` per struct), so
the checker follows exactly the fields, versions and encodings that the decoder the broker uses
will read. Run it again after changing the crate's version:

    scripts/gen-protocol-schema.py            # finds the crate through `cargo metadata`
    scripts/gen-protocol-schema.py SRC_DIR     # or reads SRC_DIR/messages/*.rs
"""

import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "crates", "protocol", "src", "schema", "generated.rs")

SCALARS = {
    "types::Boolean": "Ty::Bool",
    "types::Int8": "Ty::Int8",
    "types::Int16": "Ty::Int16",
    "types::UInt16": "Ty::UInt16",
    "types::Int32": "Ty::Int32",
    "types::Int64": "Ty::Int64",
    "types::Float64": "Ty::Float64",
    "types::Uuid": "Ty::Uuid",
    "types::String": "Ty::String",
    "types::CompactString": "Ty::CompactString",
    "types::Bytes": "Ty::Bytes",
    "types::CompactBytes": "Ty::CompactBytes",
}


def crate_source():
    if len(sys.argv) > 1:
        return sys.argv[1], "(given source)"
    metadata = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--locked"], cwd=ROOT
        )
    )
    for package in metadata["packages"]:
        if package["name"] == "kafka-protocol":
            return os.path.join(os.path.dirname(package["manifest_path"]), "src"), package[
                "version"
            ]
    sys.exit("kafka-protocol is not a dependency of this workspace")


def logical_lines(body):
    """Joins the lines that rustfmt broke after an `=`, an opening parenthesis or an operator."""
    lines, pending = [], ""
    for raw in body.splitlines():
        line = raw.strip()
        if not line or line.startswith("//"):
            continue
        pending = f"{pending} {line}".strip() if pending else line
        if not pending.endswith(("=", "(", "&&", "||")):
            lines.append(pending)
            pending = ""
    if pending:
        lines.append(pending)
    return lines


def versions_where(condition, versions):
    expression = condition.replace("&&", " and ").replace("||", " or ")
    return frozenset(v for v in versions if eval(expression, {}, {"version": v}))


class Parser:
    """Walks one decode function's lines, collecting each decode call with the versions at
    which the code reaches it."""

    def __init__(self, lines, versions):
        self.lines = lines
        self.position = 0
        self.versions = versions
        self.fields = []  # (variable, versions, type expression), in wire order
        self.tagged = []  # (tag, variable, versions, type expression)
        self.flexible = frozenset()

    def line(self):
        return self.lines[self.position]

    def parse(self):
        while self.position < len(self.lines):
            line = self.line()
            if line.startswith("Ok(Self"):
                return self
            self.statement(self.versions, variable=None, tag=None)
        return self

    def statement(self, reachable, variable, tag):
        line = self.line()
        match = re.match(r"let (?:mut )?(\w+)(?:: \w+)? = (.*)$", line)
        if match and match.group(1) == "num_tagged_fields":
            self.tagged_section(line, reachable)
            return
        if match:
            variable, rest = match.group(1), match.group(2)
            if rest.startswith("if "):
                self.conditional(rest, reachable, variable, tag)
                return
            self.leaf(rest, reachable, variable, tag)
            self.position += 1
            return
        assignment = re.match(r"(\w+) = (.*)$", line)
        if assignment and ".decode(" in line:
            self.leaf(assignment.group(2), reachable, assignment.group(1), tag)
            self.position += 1
            return
        if line.startswith("if "):
            if self.lines[self.position + 1].startswith("let num_tagged_fields"):
                self.tagged_section(line, reachable)
                return
            self.conditional(line, reachable, variable, tag)
            return
        if line.startswith("for _ in 0..num_tagged_fields"):
            self.position += 1
            return
        if line.startswith("bail!") or line.startswith("unknown_tagged_fields.insert"):
            self.position += 1
            return
        if ".decode(" in line:
            self.leaf(line, reachable, variable, tag)
        self.position += 1

    def leaf(self, expression, reachable, variable, tag):
        if ".decode(" not in expression or not reachable:
            return
        expression = expression.split(".decode(")[0].strip()
        if tag is None:
            self.fields.append((variable, reachable, expression))
        else:
            self.tagged.append((tag, variable, reachable, expression))

    def conditional(self, first, reachable, variable, tag):
        """An `if` chain (statement or expression), from its first line to its last `}`."""
        condition = re.match(r"(?:.*?)if (.*) \{$", first).group(1)
        remaining = reachable
        taken = versions_where(condition, remaining)
        self.position += 1
        while True:
            self.block(taken, variable, tag)
            closing = self.line()
            self.position += 1
            remaining = remaining - taken
            if closing.startswith("} else if "):
                condition = re.match(r"\} else if (.*) \{$", closing).group(1)
                taken = versions_where(condition, remaining)
                continue
            if closing.startswith("} else {"):
                taken = remaining
                continue
            return

    def block(self, reachable, variable, tag):
        """Statements up to (not including) the line that closes the block."""
        while not self.line().startswith("}"):
            self.statement(reachable, variable, tag)

    def tagged_section(self, first, reachable):
        """The tagged fields at the end of a flexible version: `if version >= N {` (or nothing,
        when every version is flexible), the count, then a loop matching each tag."""
        conditional = first.startswith("if ")
        if conditional:
            condition = re.match(r"if (.*) \{$", first).group(1)
            self.flexible = versions_where(condition, reachable)
            self.position += 1
        else:
            self.flexible = reachable
        assert self.line().startswith("let num_tagged_fields"), self.line()
        self.position += 1
        assert self.line().startswith("for _ in 0..num_tagged_fields"), self.line()
        self.position += 1
        depth = 1
        while depth:
            line = self.line()
            arm = re.match(r"(\d+) => \{$", line)
            if arm or line.startswith("_ => {"):
                self.position += 1
                self.block(self.flexible, None, int(arm.group(1)) if arm else None)
                self.position += 1  # the arm's closing brace
                continue
            if line.endswith("{"):
                depth += 1
            elif line.startswith("}"):
                depth -= 1
            self.position += 1
        if conditional:
            assert self.line().startswith("}"), self.line()
            self.position += 1


def function_body(text, start):
    """The text of the block opening at the first `{` at or after `start`."""
    opening = text.index("{", start)
    depth = 0
    for index in range(opening, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[opening + 1 : index]
    raise ValueError("unbalanced braces")


def struct_field_types(text):
    types = {}
    for match in re.finditer(r"pub struct (\w+) \{", text):
        body = function_body(text, match.start())
        fields = {}
        for field in re.finditer(r"pub (\w+): ([^\n]+),\n", body):
            inner = field.group(2)
            inner = re.sub(r"(Option|Vec)<", "", inner).replace(">", "")
            fields[field.group(1)] = inner.replace("super::", "").strip()
        types[match.group(1)] = fields
    return types


def contiguous(versions, where):
    ordered = sorted(versions)
    if ordered != list(range(ordered[0], ordered[-1] + 1)):
        raise ValueError(f"{where}: versions {ordered} are not one range")
    return ordered[0], ordered[-1]


def main():
    source, crate_version = crate_source()
    messages_dir = os.path.join(source, "messages")
    structs = {}  # name -> (file, min, max, parser)
    field_types = {}
    for file_name in sorted(os.listdir(messages_dir)):
        if not file_name.endswith(".rs"):
            continue
        text = open(os.path.join(messages_dir, file_name)).read()
        module = file_name[: -len(".rs")]
        for name, fields in struct_field_types(text).items():
            field_types[f"{module}::{name}"] = fields
        for match in re.finditer(r"impl Decodable for (\w+) \{", text):
            name = f"{module}::{match.group(1)}"
            decode = text.index("fn decode", match.end())
            body = function_body(text, decode)
            bounds = re.search(r"if version < (-?\d+) \|\| version > (\d+) \{", body)
            if bounds:
                low, high = int(bounds.group(1)), int(bounds.group(2))
            else:
                only = re.search(r"if version != (\d+) \{", body)
                low = high = int(only.group(1))
            parser = Parser(logical_lines(body), frozenset(range(low, high + 1))).parse()
            if name in structs:
                raise ValueError(f"struct {name} defined twice")
            structs[name] = (file_name, low, high, parser)

    # Sorted by (module, type), the order the decoder looks a type up in without allocating.
    order = sorted(structs, key=lambda name: tuple(name.split("::")))
    index = {name: position for position, name in enumerate(order)}

    def rust_type(owner, variable, expression):
        if expression in SCALARS:
            return SCALARS[expression]
        if expression in ("types::Struct { version }", "types::OptionStruct { version }"):
            module = owner.split("::")[0]
            target = f"{module}::{field_types[owner][variable]}"
            kind = "Struct" if "OptionStruct" not in expression else "OptionStruct"
            return f"Ty::{kind}({index[target]})"
        array = re.match(r"types::(Compact)?Array\((.*)\)$", expression)
        if array:
            inner = rust_type(owner, variable, array.group(2))
            kind = "CompactArray" if array.group(1) else "Array"
            return f"Ty::{kind}(&{inner})"
        raise ValueError(f"{owner}.{variable}: unknown type expression {expression}")

    out = []
    out.append(
        f"// @generated by scripts/gen-protocol-schema.py from kafka-protocol {crate_version}'s\n"
        "// decoders: the wire layout of every struct it decodes. Do not edit; run the script.\n"
    )
    out.append("use super::{Field, StructSchema, Tagged, Ty};\n")
    out.append(f"pub(super) static STRUCTS: [StructSchema; {len(order)}] = [")
    for name in order:
        file_name, low, high, parser = structs[name]
        flexible = (
            "None"
            if not parser.flexible
            else "Some(({}, {}))".format(*contiguous(parser.flexible, name))
        )
        out.append("    StructSchema {")
        out.append(f'        name: "{name}",')
        out.append(f"        versions: ({low}, {high}),")
        out.append(f"        flexible: {flexible},")
        out.append("        fields: &[")
        for variable, versions, expression in parser.fields:
            first, last = contiguous(versions, f"{name}.{variable}")
            ty = rust_type(name, variable, expression)
            out.append(f"            Field {{ versions: ({first}, {last}), ty: {ty} }}, // {variable}")
        out.append("        ],")
        out.append("        tagged: &[")
        for tag, variable, versions, expression in parser.tagged:
            first, last = contiguous(versions, f"{name}.{variable}")
            ty = rust_type(name, variable, expression)
            out.append(
                f"            Tagged {{ tag: {tag}, versions: ({first}, {last}), ty: {ty} }}, // {variable}"
            )
        out.append("        ],")
        out.append("    },")
    out.append("];\n")

    by_type_name = {name.split("::")[1]: name for name in order}
    api_keys = re.findall(
        r"^    (\w+) = (\d+),$",
        function_body(
            open(os.path.join(source, "messages.rs")).read(),
            open(os.path.join(source, "messages.rs")).read().index("pub enum ApiKey"),
        ),
        re.M,
    )
    for kind in ("Request", "Response"):
        entries = [(int(key), index[by_type_name[f"{name}{kind}"]]) for name, key in api_keys]
        out.append(
            f"/// ({kind.lower()} api key, index in [`STRUCTS`]) for every API the crate knows."
        )
        out.append(f"pub(super) static {kind.upper()}S: [(i16, usize); {len(entries)}] = [")
        for key, position in sorted(entries):
            out.append(f"    ({key}, {position}),")
        out.append("];\n")
    out.append(f"pub(super) const REQUEST_HEADER: usize = {index[by_type_name['RequestHeader']]};")
    out.append(f"pub(super) const RESPONSE_HEADER: usize = {index[by_type_name['ResponseHeader']]};")

    os.makedirs(os.path.dirname(OUTPUT), exist_ok=True)
    with open(OUTPUT, "w") as file:
        file.write("\n".join(out) + "\n")
    print(f"{OUTPUT}: {len(order)} structs from kafka-protocol {crate_version}")


if __name__ == "__main__":
    main()
