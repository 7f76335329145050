#!/bin/sh
# Example token helper: prints an access token on stdout. Replace it with
# one that runs an OAuth2 client-credentials or refresh-token flow for
# https://outlook.office365.com/.default (e.g. a small script around
# `az account get-access-token` or your secret manager's CLI).
exec cat "$(dirname "$0")/m365-access-token"
