#!/usr/bin/env python3
# Writes a C++ header holding a text file as a string constant (the embedded default topology).
import sys

src, dst, name = sys.argv[1], sys.argv[2], sys.argv[3]
with open(src, "rb") as f:
    data = f.read()
lines = [
    "// Generated from %s by control/hub/embed_text.py: do not edit." % src.split("/")[-1],
    "#pragma once",
    "",
    "#include <string_view>",
    "",
    "namespace dmvpn::hub {",
    "",
    "inline constexpr char %s_bytes[] = {" % name,
]
for i in range(0, len(data), 16):
    lines.append("    " + ", ".join("0x%02x" % b for b in data[i:i + 16]) + ",")
lines += [
    "    0x00};",
    "inline constexpr std::string_view %s{%s_bytes, sizeof(%s_bytes) - 1};" % (name, name, name),
    "",
    "}  // namespace dmvpn::hub",
    "",
]
with open(dst, "w") as f:
    f.write("\n".join(lines))
