@echo off
rem 4.2) data_src sort: sort or prune data_src/aligned by a measure (blur, pose, histogram, best
rem faces ...): a menu.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" sort ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
