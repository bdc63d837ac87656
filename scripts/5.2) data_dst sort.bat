@echo off
rem 5.2) data_dst sort: sort or prune data_dst/aligned by a measure: a menu. Merging does not depend
rem on the names.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" sort ^
    --input-dir "%WORKSPACE%\data_dst\aligned" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
