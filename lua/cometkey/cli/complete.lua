--- cometkey.cli.complete: shell completion scripts for bash, zsh and fish,
-- written from the command and flag tables (cometkey.cli.commands and
-- cometkey.cli.args), so they list exactly what the tool accepts.
-- Each function takes the commands module and returns the script's text.
local args_mod = require "cometkey.cli.args"

local ipairs, pairs, concat, format = ipairs, pairs, table.concat, string.format

local M = {}

local STATUS_WORDS = "enabled disabled expired exhausted"
local SHELLS = "bash zsh fish"

-- Profile names, read from the config file by the shell itself (the tool is not run).
local PROFILES_SH = [=[sed -n 's/^ *\[ *\([A-Za-z0-9_.-]*\) *\] *$/\1/p' ]=]
  .. [=["${XDG_CONFIG_HOME:-$HOME/.config}/cometkey/config" 2>/dev/null]=]

local function names(flags)
  local out = {}
  for _, f in ipairs(flags) do
    for _, n in ipairs(f) do out[#out + 1] = n end
  end
  return out
end

local function value_flags(flags, kind)
  local out = {}
  for _, f in ipairs(flags) do
    if f.value and (kind == nil or f.complete == kind) then
      for _, n in ipairs(f) do out[#out + 1] = n end
    end
  end
  return out
end

function M.bash(commands)
  local global = args_mod.GLOBAL_FLAGS
  local cases = {}
  for _, name in ipairs(commands.list) do
    local def = commands.by_name[name]
    cases[#cases + 1] = format("        %s) flags=%q ;;", name, concat(names(def.flags), " "))
  end
  local all_value_flags = value_flags(global)
  for _, name in ipairs(commands.list) do
    for _, n in ipairs(value_flags(commands.by_name[name].flags)) do all_value_flags[#all_value_flags + 1] = n end
  end
  local sets = {}
  for _, n in ipairs(all_value_flags) do sets[n] = true end
  local vf = {}
  for n in pairs(sets) do vf[#vf + 1] = n end
  table.sort(vf)
  return concat({
    "# bash completion for cometkey (cometkey completion bash)",
    "_cometkey() {",
    "    local cur prev cmd i w flags",
    "    cur=${COMP_WORDS[COMP_CWORD]}",
    "    prev=${COMP_WORDS[COMP_CWORD-1]}",
    "    COMPREPLY=()",
    "    case $prev in",
    "        " .. concat(value_flags(global, "file"), "|") .. ")",
    "            COMPREPLY=($(compgen -f -- \"$cur\")); return 0 ;;",
    "        --profile)",
    "            COMPREPLY=($(compgen -W \"$(" .. PROFILES_SH .. ")\" -- \"$cur\")); return 0 ;;",
    "        --status)",
    "            COMPREPLY=($(compgen -W \"" .. STATUS_WORDS .. "\" -- \"$cur\")); return 0 ;;",
    "        --cross-group-retry)",
    "            COMPREPLY=($(compgen -W \"on off\" -- \"$cur\")); return 0 ;;",
    "        " .. concat(vf, "|") .. ")",
    "            return 0 ;;",
    "    esac",
    "    cmd=",
    "    i=1",
    "    while [ $i -lt $COMP_CWORD ]; do",
    "        w=${COMP_WORDS[i]}",
    "        case $w in",
    "            " .. concat(value_flags(global), "|") .. ") i=$((i + 1)) ;;",
    "            -*) ;;",
    "            *) cmd=$w; break ;;",
    "        esac",
    "        i=$((i + 1))",
    "    done",
    "    if [ -z \"$cmd\" ]; then",
    format("        COMPREPLY=($(compgen -W %q -- \"$cur\"))",
      concat(commands.list, " ") .. " help " .. concat(names(global), " ") .. " --version"),
    "        return 0",
    "    fi",
    "    case $cmd in",
    "        completion) COMPREPLY=($(compgen -W \"" .. SHELLS .. "\" -- \"$cur\")); return 0 ;;",
    format("        help) COMPREPLY=($(compgen -W %q -- \"$cur\")); return 0 ;;", concat(commands.list, " ")),
    concat(cases, "\n"),
    "        *) flags= ;;",
    "    esac",
    "    case $cur in",
    format("        -*) COMPREPLY=($(compgen -W \"$flags %s\" -- \"$cur\")) ;;", concat(names(global), " ")),
    "    esac",
    "    return 0",
    "}",
    "complete -F _cometkey cometkey",
    "",
  }, "\n")
end

local function zsh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

function M.zsh(commands)
  local cmd_lines = {}
  for _, name in ipairs(commands.list) do
    cmd_lines[#cmd_lines + 1] = "        " .. zsh_quote(name:gsub(":", "\\:") .. ":" .. commands.by_name[name].summary)
  end
  local cases = {}
  for _, name in ipairs(commands.list) do
    cases[#cases + 1] = format("        %s) flags=(%s) ;;", name, concat(names(commands.by_name[name].flags), " "))
  end
  return concat({
    "#compdef cometkey",
    "# zsh completion for cometkey (cometkey completion zsh)",
    "_cometkey() {",
    "    local -a cmds flags global",
    "    cmds=(",
    concat(cmd_lines, "\n"),
    "    )",
    "    global=(" .. concat(names(args_mod.GLOBAL_FLAGS), " ") .. ")",
    "    case ${words[CURRENT-1]} in",
    "        " .. concat(value_flags(args_mod.GLOBAL_FLAGS, "file"), "|") .. ") _files; return ;;",
    "        --profile) compadd -- $(" .. PROFILES_SH .. "); return ;;",
    "        --status) compadd -- " .. STATUS_WORDS .. "; return ;;",
    "        --cross-group-retry) compadd -- on off; return ;;",
    "    esac",
    "    local cmd i",
    "    for (( i = 2; i < CURRENT; i++ )); do",
    "        case ${words[i]} in",
    "            " .. concat(value_flags(args_mod.GLOBAL_FLAGS), "|") .. ") (( i++ )) ;;",
    "            -*) ;;",
    "            *) cmd=${words[i]}; break ;;",
    "        esac",
    "    done",
    "    if [[ -z $cmd ]]; then",
    "        if [[ ${words[CURRENT]} == -* ]]; then compadd -- $global --version; else _describe command cmds; fi",
    "        return",
    "    fi",
    "    case $cmd in",
    "        completion) compadd -- " .. SHELLS .. "; return ;;",
    concat(cases, "\n"),
    "    esac",
    "    compadd -- $flags $global",
    "}",
    "_cometkey \"$@\"",
    "",
  }, "\n")
end

local function fish_escape(s) return "'" .. s:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'" end

function M.fish(commands)
  local lines = {
    "# fish completion for cometkey (cometkey completion fish)",
    "complete -c cometkey -f",
  }
  local all = concat(commands.list, " ")
  for _, name in ipairs(commands.list) do
    lines[#lines + 1] = format("complete -c cometkey -n 'not __fish_seen_subcommand_from %s' -a %s -d %s", all,
      name, fish_escape(commands.by_name[name].summary))
  end
  local function flag_line(f, cond)
    local parts = { "complete -c cometkey" }
    if cond then parts[#parts + 1] = "-n " .. fish_escape(cond) end
    for _, n in ipairs(f) do
      if n:sub(1, 2) == "--" then parts[#parts + 1] = "-l " .. n:sub(3) else parts[#parts + 1] = "-s " .. n:sub(2) end
    end
    if f.value then
      parts[#parts + 1] = "-r"
      if f.complete == "file" then parts[#parts + 1] = "-F" end
      if f.complete == "status" then parts[#parts + 1] = "-a '" .. STATUS_WORDS .. "'" end
      if f.complete == "onoff" then parts[#parts + 1] = "-a 'on off'" end
      if f.complete == "profile" then parts[#parts + 1] = "-a '(" .. PROFILES_SH:gsub("'", "\\'") .. ")'" end
    end
    parts[#parts + 1] = "-d " .. fish_escape(f.help)
    return concat(parts, " ")
  end
  for _, f in ipairs(args_mod.GLOBAL_FLAGS) do lines[#lines + 1] = flag_line(f) end
  for _, name in ipairs(commands.list) do
    for _, f in ipairs(commands.by_name[name].flags) do
      lines[#lines + 1] = flag_line(f, "__fish_seen_subcommand_from " .. name)
    end
  end
  lines[#lines + 1] = "complete -c cometkey -n '__fish_seen_subcommand_from completion' -a '" .. SHELLS .. "'"
  lines[#lines + 1] = ""
  return concat(lines, "\n")
end

return M
