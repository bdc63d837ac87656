@echo off
rem 5) data_dst faceset extract + manual fix: automatic data_dst extraction, then a window to place
rem the faces by hand in the frames where none was found.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" extract ^
    --input-dir "%WORKSPACE%\data_dst" ^
    --output-dir "%WORKSPACE%\data_dst\aligned" ^
    --detector centerface ^
    --max-faces-from-image 0 ^
    --output-debug ^
    --manual-fix ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
