@echo off
rem 3.optional) denoise data_dst images: temporal denoise of the workspace/data_dst frames, in
rem place. Asks the strength.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" videoed denoise-image-sequence ^
    --input-dir "%WORKSPACE%\data_dst" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
