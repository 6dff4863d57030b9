# SPDX-License-Identifier: Apache-2.0
"""Located load errors and warnings, with Falco's codes (falco_load_result.cpp) and wording."""

from __future__ import annotations

from dataclasses import dataclass

ERROR_TITLES = {
    "LOAD_ERR_FILE_READ": "Could not read file",
    "LOAD_ERR_YAML_PARSE": "Invalid yaml",
    "LOAD_ERR_YAML_VALIDATE": "Error validating internal structure of YAML file",
    "LOAD_ERR_COMPILE_CONDITION": "Error compiling condition",
    "LOAD_ERR_COMPILE_OUTPUT": "Error compiling output",
    "LOAD_ERR_VALIDATE": "Error validating rule/macro/list/exception objects",
    "LOAD_ERR_EXTENSION": "Error in extension item",
}

WARNING_TITLES = {
    "LOAD_UNKNOWN_SOURCE": "Unknown event source",
    "LOAD_UNSAFE_NA_CHECK": "Unsafe <NA> comparison in condition",
    "LOAD_NO_EVTTYPE": "Condition has no event-type restriction",
    "LOAD_UNKNOWN_FILTER": "Unknown field or event-type in condition or output",
    "LOAD_UNUSED_MACRO": "Unused macro",
    "LOAD_UNUSED_LIST": "Unused list",
    "LOAD_UNKNOWN_ITEM": "Unknown rules file item",
    "LOAD_DEPRECATED_ITEM": "Used deprecated item",
    "LOAD_WARNING_EXTENSION": "Warning in extension item",
    "LOAD_APPEND_NO_VALUES": "Overriding/appending with no values",
    "LOAD_EXCEPTION_NAME_NOT_UNIQUE": "Multiple exceptions defined with the same name",
    "LOAD_INVALID_MACRO_NAME": "Invalid macro name",
    "LOAD_INVALID_LIST_NAME": "Invalid list name",
    "LOAD_COMPILE_CONDITION": "Condition has potential issues",
    "LOAD_UNKNOWN_KEY": "Unknown key in rules file item",
    # Lanner's own (Falco has no alert size limits): ruleengine/output_size.py.
    "LOAD_OUTPUT_TOO_LARGE": "Rule output may exceed the alert size limits",
}


@dataclass(frozen=True, slots=True)
class Location:
    """A 1-based position in a file; line 0 means "the file as a whole"."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class LoadMessage:
    """One error or warning from loading rules."""

    code: str
    message: str
    location: Location
    is_error: bool
    item_type: str = ""
    item_name: str = ""
    snippet: str = ""

    @property
    def title(self) -> str:
        """Falco's short description of ``code``."""
        return (ERROR_TITLES if self.is_error else WARNING_TITLES).get(self.code, self.code)

    def format(self) -> str:
        """``file:line:col: error|warning: CODE (Title): message [rule 'x']``."""
        kind = "error" if self.is_error else "warning"
        what = f" [{self.item_type} '{self.item_name}']" if self.item_type else ""
        message = f": {self.message}" if self.message else ""  # some of Falco's warnings have only their code
        text = f"{self.location}: {kind}: {self.code} ({self.title}){message}{what}"
        if self.snippet:
            text += "\n" + self.snippet
        return text


class LoadError(Exception):
    """Raised inside the loader to abort one item; carries the located message."""

    def __init__(self, msg: LoadMessage) -> None:
        super().__init__(msg.message)
        self.msg = msg
