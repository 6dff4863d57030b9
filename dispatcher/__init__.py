# SPDX-License-Identifier: Apache-2.0
"""Lanner's dispatcher: durable alert intake, delivery to outputs, and the public Subscribe stream."""

from dispatcher.config import DispatcherConfig, OutputSpec
from dispatcher.driver import DriverOptions, OutputDriver
from dispatcher.falco_format import JsonOptions, falco_json, text_line
from dispatcher.model import Alert, Priority
from dispatcher.registry import Output, OutputContext, PermanentError, register_output
from dispatcher.routing import Route

__all__ = [
    "Alert",
    "DispatcherConfig",
    "DriverOptions",
    "JsonOptions",
    "Output",
    "OutputContext",
    "OutputDriver",
    "OutputSpec",
    "PermanentError",
    "Priority",
    "Route",
    "falco_json",
    "register_output",
    "text_line",
]
