#!/bin/sh
# Starts the Lambda runtime interface client with the handler named by CMD, as the
# upstream Lambda base image's entry point does inside Lambda, with the same interpreter.
exec /var/lang/bin/python3.11 -m awslambdaric "$@"
