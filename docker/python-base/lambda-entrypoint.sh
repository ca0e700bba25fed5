#!/bin/sh
# Starts the Lambda runtime interface client with the handler named by CMD, as the
# upstream Lambda base image's entry point does inside Lambda.
exec /usr/bin/python3 -m awslambdaric "$@"
