@echo off
rem Called first by every numbered script: the repo's .venv (made on first use) and the workspace.
rem Sets REPO_ROOT, VENV_PY and WORKSPACE (default repo\workspace; set WORKSPACE=folder to work on
rem another project folder).
call "%~dp0_venv.bat" requirements.txt || exit /b 1
if not defined WORKSPACE set "WORKSPACE=%REPO_ROOT%\workspace"
exit /b 0
