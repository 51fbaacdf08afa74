"""Tab completion of ``./manage jobs`` for bash and zsh, through argcomplete.

``./manage`` is Django's manage.py, which completes only command names; this
shell glue calls ``./manage jobs`` itself with argcomplete's environment, and
the jobs command hands its parser to argcomplete (see
scheduling/management/commands/jobs.py). Job names and ids, statuses and
execution ids come from the database (the parser's completers).
"""
from __future__ import annotations

BASH = r'''# jobsite: tab completion of `./manage jobs ...` (bash; zsh through bashcompinit)
_jobsite_manage_jobs() {
    if [[ "${COMP_WORDS[1]}" != "jobs" || $COMP_CWORD -lt 2 ]]; then
        COMPREPLY=($(compgen -W "jobs" -- "${COMP_WORDS[COMP_CWORD]}"))
        return
    fi
    local IFS=$'\013'
    COMPREPLY=($(_ARGCOMPLETE=2 _ARGCOMPLETE_SHELL=bash _ARGCOMPLETE_SUPPRESS_SPACE=1 \
        _ARGCOMPLETE_COMP_WORDBREAKS="$COMP_WORDBREAKS" COMP_LINE="$COMP_LINE" COMP_POINT="$COMP_POINT" \
        COMP_TYPE="$COMP_TYPE" "${COMP_WORDS[0]}" jobs 8>&1 9>/dev/null 1>/dev/null 2>/dev/null))
    if [[ $? != 0 ]]; then
        unset COMPREPLY
    elif [[ "${COMPREPLY-}" =~ [=/:]$ ]]; then
        compopt -o nospace
    fi
}
complete -o default -F _jobsite_manage_jobs manage ./manage
'''

ZSH = "autoload -U +X compinit && compinit\nautoload -U +X bashcompinit && bashcompinit\n" + BASH


def completion_script(shell: str) -> str:
    return {"bash": BASH, "zsh": ZSH}[shell]
