@echo off
rem 1) clear workspace: delete data_src, data_dst and model in the workspace and make them again, empty.
rem The data_src.* and data_dst.* videos (and result videos) stay. Asks first.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" clear-workspace --workspace "%WORKSPACE%" %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
