@echo off
rem 5) data_dst faceset MANUAL RE-EXTRACT DELETED ALIGNED_DEBUG: DFL's clean-up loop. Delete the images
rem of badly aligned frames from data_dst\aligned_debug (see 5.1) view aligned_debug), then run this: those
rem frames open in the manual window (old face pre-placed); their old faces move to data_dst\aligned_trash.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" extract ^
    --input-dir "%WORKSPACE%\data_dst" ^
    --output-dir "%WORKSPACE%\data_dst\aligned" ^
    --detector manual ^
    --manual-output-debug-fix ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
